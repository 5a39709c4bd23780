"""Embedding backends: the ONNX Runtime one, and the choice between all of them.

`onnx` runs the graph `build_onnx.py` builds (BERT + mean pooling + L2 norm inside it) with
ONNX Runtime on CPU; `triton` (triton_backend.py) sends token ids to a Triton server running the
same graph; `mlx` (mlx_backend.py) runs the same weights with Apple's MLX. Each module exposes
`create(settings) -> EmbeddingBackend` and imports its runtime only when chosen; what they share
is in base.py, below all of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deja.settings import ConfigError
from services.embedder.base import (
    DIMENSION,
    MODEL_ID,
    RUN_TOKENS,
    EmbeddingBackend,
    LengthSortedBackend,
    ModelInfo,
    file_version,
    resolve,
)
from services.embedder.settings import EmbedderSettings

# Two texts of different lengths: enough to expose a run-wide activation scale.
_PROBE = ["How do I center a div?", "What is the time complexity of binary search on a sorted array of integers?"]
_ROW_TOLERANCE = 1e-5  # float reordering across batch shapes stays far below this


class OnnxBackend(LengthSortedBackend):
    """ONNX Runtime on CPU."""

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path | None = None,
        *,
        max_tokens: int = 256,
        threads: int = 0,
        batch_size: int = 64,
        run_tokens: int = RUN_TOKENS,
    ) -> None:
        import onnxruntime as ort

        if not model_path.is_file():
            raise ConfigError(f"DEJA_EMBEDDER_MODEL_PATH: no ONNX model at {model_path}; build it with `make models`")
        super().__init__(tokenizer_path, max_tokens=max_tokens, batch_size=batch_size, run_tokens=run_tokens)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ORT's default, one thread per core
        options.inter_op_num_threads = 1  # a BERT graph is a chain: no parallel branches to run
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # fuses attention/gelu/LN
        # Idle worker threads sleep instead of spinning: the embedder shares its cores with the gateway,
        # Redis and the other services; measured on 2 busy cores, spinning cost both latency and throughput.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = self._session.get_outputs()
        if inputs != ["input_ids", "attention_mask"] or outputs[0].name != "embeddings":
            raise ConfigError(f"{model_path}: not an embedder graph (inputs {inputs}, outputs {outputs[0].name})")
        dimension = outputs[0].shape[-1]
        if dimension != DIMENSION:
            raise ConfigError(f"{model_path}: output dimension {dimension}, expected {DIMENSION}")
        self.info = ModelInfo(MODEL_ID, file_version(model_path), DIMENSION, "onnx")
        # A dynamically quantized graph (the int8 default) scales each run's activations by that run's
        # largest value, so a text's vector would depend on what else shares its run (cosine down to
        # 0.99). Such a graph embeds one text per run: each text keeps one vector, however calls batch.
        self.rows_independent = self._rows_are_independent()
        if not self.rows_independent:
            self._batch_size = 1

    def _rows_are_independent(self) -> bool:
        alone = self.embed([_PROBE[0]])
        together = self.embed(_PROBE)  # one run: the probe fits any batch size above 1
        return bool(np.max(np.abs(alone[0] - together[0])) < _ROW_TOLERANCE)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (vectors,) = self._session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
        return vectors


def create_backend(settings: EmbedderSettings) -> EmbeddingBackend:
    """The backend `DEJA_EMBEDDER_BACKEND` names, loaded and ready (settings.validate already refused others)."""
    if settings.backend == "onnx":
        return OnnxBackend(
            resolve(settings.model_path),
            resolve(settings.tokenizer_path) if settings.tokenizer_path else None,
            max_tokens=settings.max_tokens,
            threads=settings.threads,
            batch_size=settings.max_batch,
        )
    if settings.backend == "triton":
        from services.embedder import triton_backend

        return triton_backend.create(settings)
    if settings.backend == "mlx":
        from services.embedder import mlx_backend

        return mlx_backend.create(settings)
    raise ConfigError(f"DEJA_EMBEDDER_BACKEND: unknown backend {settings.backend!r}")
