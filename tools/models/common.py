"""What the embedder's model scripts share: tokenizing into padded batches, comparing vectors, and
writing a model file so that make never sees a half-made one.

Standard library and numpy only (a tokenizer is passed in): export_onnx.py imports this in
`.venv-export`, which holds torch, transformers, onnx, onnxruntime, tokenizers and numpy, and
where the repository is not installed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EMBEDDER_ONNX = REPO / "deploy/triton/model_repository/embedder/1/model.onnx"  # where `make models` writes it
EMBEDDER_INT8_ONNX = REPO / "services/embedder/model/int8.onnx"  # its int8 form, the CPU default (quantize_embedder.py)
MAX_TOKENS = 256  # the embedder's truncation (DEJA_EMBEDDER_MAX_TOKENS' default)

T = TypeVar("T")


def for_embedder(tokenizer, max_tokens: int = MAX_TOKENS):
    """The shipped tokenizer.json pads to a fixed length; the embedder pads per batch and truncates."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


def padded_batch(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 [len(texts), longest], right-padded with zeros (mask 0)."""
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


def row_cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Cosine of each row of `got` with the same row of `want`."""
    return (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))


def write_model(out: Path, write: Callable[[Path], T]) -> T:
    """`write(tmp)` fills a temporary file beside `out`, renamed over `out` only if it returns."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        result = write(tmp)
        tmp.chmod(0o644)  # mkstemp makes it 0600; a service or Triton running as another user must read it
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def shown(path: Path) -> Path:
    """The path as a message names it: relative to the repository when inside it."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path
