"""Model building: the embedder ONNX graph without torch, its torch export and their comparison."""
