"""Embeddings from a Triton server running the embedder graph (deploy/triton/model_repository/embedder).

Tokenising stays here, with the same tokenizer, truncation and length-sorted runs as the ONNX
backend (LengthSortedBackend); Triton only sees int64 token ids. Two differences:
- each run's sequence axis is padded up to a multiple of `PAD_TO`: Triton's dynamic batcher merges
  only requests of the same shape, so a few bucket widths let requests of many embedder pods share
  a GPU run. Padding is zeros with mask 0, which leaves every row's vector unchanged;
- runs are larger (RUN_TOKENS) but hold at most the model's `max_batch_size` rows (Triton refuses
  larger requests).

`model_version` is the `deja_model_version` parameter of the model's config (blake3 of the ONNX
file, written by `make models`): the same file gives the same version here and in the ONNX
backend, so both share one embedding cache and one index collection, and a server without the
parameter is refused rather than guessed at.
"""

from __future__ import annotations

import numpy as np

from deja.clients.triton import OnTriton, TritonModel, connect
from deja.settings import ConfigError
from services.embedder.base import DIMENSION, MODEL_ID, LengthSortedBackend, ModelInfo, resolve
from services.embedder.settings import EmbedderSettings

PAD_TO = 16
# Padded tokens per request: 4x the ONNX backend's CPU-tuned runs, so a full micro-batch of short
# questions (64 x <= 32 tokens) is one request (one round trip; a GPU wants large runs), while one
# request stays small enough to meet its deadline on a CPU Triton too.
RUN_TOKENS = 2048
INPUTS = ["input_ids", "attention_mask"]
OUTPUT = "embeddings"


class TritonBackend(OnTriton, LengthSortedBackend):
    def __init__(self, model: TritonModel, tokenizer_path=None, *, max_tokens: int = 256, batch_size: int = 64) -> None:
        where = f"DEJA_EMBEDDER_TRITON_MODEL: {model.model!r} on {model.url}"
        if model.input_names() != INPUTS or model.output_dims(OUTPUT) != [DIMENSION]:
            raise ConfigError(f"{where} is not the embedder graph (inputs {model.input_names()}, output {OUTPUT!r})")
        version = model.version(where)
        rows = min(batch_size, model.max_batch_size) if model.max_batch_size else batch_size
        super().__init__(tokenizer_path, max_tokens=max_tokens, batch_size=rows, run_tokens=RUN_TOKENS, pad_to=PAD_TO)
        self.model = model
        self.info = ModelInfo(MODEL_ID, version, DIMENSION, "triton")

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.model.infer({"input_ids": ids, "attention_mask": mask}, OUTPUT)


def create(settings: EmbedderSettings) -> TritonBackend:
    model = connect(
        settings.triton_url,
        settings.triton_model,
        timeout_ms=settings.triton_timeout_ms,
        tracer="deja.embedder",
        setting="DEJA_EMBEDDER_TRITON_URL",
    )
    return TritonBackend(
        model,
        resolve(settings.tokenizer_path) if settings.tokenizer_path else None,
        max_tokens=settings.max_tokens,
        batch_size=settings.max_batch,
    )
