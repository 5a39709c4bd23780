"""Deja's shared runtime: settings, logging, gRPC bootstrap, typed clients, the local cluster
runner and the `deja` command. The generated gRPC contracts live in `deja.v1`."""
