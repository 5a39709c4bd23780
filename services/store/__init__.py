"""L1 exact cache over Redis: `redis_store` (persistence and accounting), `servicer` (gRPC), `main` (wiring)."""
