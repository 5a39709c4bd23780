"""L3 verifier: `scorer` (the PairScorer seam), `onnx_scorer` (ONNX Runtime), `servicer` (gRPC), `main` (wiring)."""
