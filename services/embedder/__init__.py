"""Text -> vectors: `backends` (ONNX Runtime), `batcher` (micro-batching), `cache` (Redis),
`embedder` (one call end to end), `servicer` (gRPC), `main` (wiring), `build_onnx` (build step, no torch;
`export_onnx` + `compare_graphs`: its check against a torch export)."""
