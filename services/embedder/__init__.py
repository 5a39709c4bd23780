"""Text -> vectors: `backends` (ONNX Runtime), `batcher` (micro-batching), `cache` (Redis),
`embedder` (one call end to end), `servicer` (gRPC), `main` (wiring), `export_onnx` (build step)."""
