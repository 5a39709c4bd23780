"""L2 semantic index: `backend` (protocol, validation, ids), `edge_backend` (embedded Qdrant engine),
`qdrant_backend` (Qdrant server), `servicer` (gRPC), `main` (wiring), `bench` (measurements)."""
