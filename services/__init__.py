"""Deja services: one folder per gRPC service plus the HTTP gateway and the mock provider."""
