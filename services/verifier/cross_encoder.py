"""What every verifier backend shares: `CrossEncoderScorer`, the pair rules and the calibration.

The backends (onnx_scorer.py, triton_scorer.py, mlx_scorer.py) differ only in how they run the
model; they build on this module, and scorer.py (the seam the service sees) picks one of them,
so no backend imports the module that chooses between them.

Scores are **symmetric**: "does B ask what A asks" has no direction, and a cross-encoder
reads its two segments differently. Two ways to make score(a, [b]) == score(b, [a]) exact, named
by the model folder's calibration.json (`pair_order`):
- "both" (default; the bundled ms-marco model): each pair is scored both ways and the two logits
  are averaged before the logit -> probability step (averaging logits rather than probabilities
  keeps one confident direction from being flattened by the sigmoid's saturation);
- "canonical" (the trained verifier, which saw every training pair in both orders): one row per
  pair, its two texts in sorted order: half the inference of "both".

Logit -> probability goes through a `Calibration`: the model folder's `calibration.json` (Platt
scaling fitted on held-out dev pairs, shipped with the trained verifier; `load_calibration`), so
the gateway's threshold is a maximum accepted error probability. A folder without one (the
bundled ms-marco model) gets the plain sigmoid: a monotone score, not a probability.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deja.logs import get_logger
from deja.v1 import common_pb2

log = get_logger("deja.verifier")

# Combined (symmetric) logits -> probabilities, elementwise and monotone.
Calibration = Callable[[np.ndarray], np.ndarray]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Uncalibrated logit -> (0, 1); the tanh form does not overflow for large |logit|."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


PAIR_ORDERS = ("both", "canonical")


def load_pair_order(model_dir: Path) -> str:
    """calibration.json's `pair_order` ("both" when absent): the calibration was fitted on those logits."""
    path = model_dir / "calibration.json"
    order = json.loads(path.read_text()).get("pair_order", "both") if path.is_file() else "both"
    if order not in PAIR_ORDERS:
        raise ValueError(f"{path}: pair_order {order!r} is not one of {PAIR_ORDERS}")
    return order


def load_calibration(model_dir: Path) -> Calibration | None:
    """`calibration.json` next to the model ({"method": "platt", "a", "b"}) -> sigmoid(a * logit + b)."""
    path = model_dir / "calibration.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("method") != "platt":
        raise ValueError(f"{path}: unknown calibration method {record.get('method')!r}")
    a, b = float(record["a"]), float(record["b"])
    return lambda logits: sigmoid(a * logits + b)


# Two pairs of different lengths: enough to expose a batch-wide quantization scale.
_PROBE = [
    ("How do I center a div?", "center a div in css"),
    ("What is the time complexity of binary search on a sorted array?", "Explain how quicksort partitions an array."),
]
_ROW_TOLERANCE = 1e-4  # logits; float reordering across batch shapes stays far below this


def model_version(model_dir: Path) -> str:
    """Content hash of a verifier model folder's weights: model.onnx plus any external-data files.
    Every backend reports the same version for the same folder."""
    import blake3

    digest = blake3.blake3((model_dir / "model.onnx").read_bytes())
    for chunk in sorted(model_dir.glob("model.onnx.data*")):  # fp32 weights kept as external data (< 40 MB files)
        digest.update(chunk.read_bytes())
    return digest.hexdigest()[:16]


class CrossEncoderScorer:
    """A BERT-style pair classifier behind any runtime: what every such backend shares.

    Pair encoding (the model's tokenizer.json, right-padded to the call's longest pair, longest-first
    truncation to `max_length`), symmetric logits (`pair_order`; by default the one in calibration.json
    next to the tokenizer), the two-class head
    rule, calibration, and the per-candidate rule: dynamically quantized int8 models pick one
    activation scale per tensor over every row of a call, so a candidate's score would depend on
    which other candidates came with it; a cache must give the same answer for the same pair, so
    at load time the scorer checks whether rows are independent and, if not, makes one call per
    candidate (its rows have the same length: no padding, and a shared scale stays symmetric). The
    trained verifier's int8 model is statically quantized (fixed activation scales): its rows are
    independent, so all candidates go in one call.

    A subclass sets `self._info` and implements `_run(feed) -> raw outputs` (a [rows] or [rows, 1]
    logit, or [rows, 2] for a two-class head) before calling `__init__`.
    """

    _info: common_pb2.ModelInfo
    # A runtime that computes in float throughout (no dynamic quantization) sets this: rows never
    # share an activation scale, so the load-time probe is skipped.
    rows_always_independent = False

    def __init__(
        self,
        tokenizer_path: Path,
        *,
        max_length: int,
        wants_type_ids: bool,
        calibration: Calibration | None,
        pair_order: str | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        shipped = self._tokenizer.padding or {}  # shipped files pad to a fixed 128/512: keep only the pad token
        self._tokenizer.no_padding()
        self._tokenizer.enable_padding(pad_id=shipped.get("pad_id", 0), pad_token=shipped.get("pad_token", "[PAD]"))
        self._tokenizer.enable_truncation(max_length)  # longest_first: trims the longer text of the pair
        self._wants_type_ids = wants_type_ids
        self._calibrate = calibration or sigmoid
        self.pair_order = pair_order or load_pair_order(tokenizer_path.parent)
        if self.pair_order not in PAIR_ORDERS:
            raise ValueError(f"pair_order {self.pair_order!r} is not one of {PAIR_ORDERS}")
        self.batches_candidates = self.rows_always_independent or self._rows_are_independent()
        log.info(
            "verifier_model_loaded",
            model_id=self._info.model_id,
            model_version=self._info.model_version,
            backend=self._info.backend,
            max_length=max_length,
            pair_order=self.pair_order,
            batches_candidates=self.batches_candidates,
        )

    @property
    def info(self) -> common_pb2.ModelInfo:
        return self._info

    def score(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        if self.batches_candidates:
            logits = self._symmetric_logits(query, candidates)
        else:
            logits = np.concatenate([self._symmetric_logits(query, [c]) for c in candidates])
        return self._calibrate(logits).astype(np.float32)

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _symmetric_logits(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """Mean of logit(query, c) and logit(c, query) in one inference call, or logit(sorted pair)."""
        if self.pair_order == "canonical":
            return self._logits([(query, c) if query <= c else (c, query) for c in candidates])
        n = len(candidates)
        logits = self._logits([(query, c) for c in candidates] + [(c, query) for c in candidates])
        return (logits[:n] + logits[n:]) / 2

    def _logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(pairs)  # padded to this call's longest pair
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if self._wants_type_ids:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        out = np.asarray(self._run(feed)).astype(np.float64)
        if out.ndim == 2 and out.shape[1] == 2:
            return out[:, 1] - out[:, 0]  # two-class head: log-odds of "same", so sigmoid == softmax[1]
        return out.reshape(len(pairs))

    def _rows_are_independent(self) -> bool:
        (a, b), (c, d) = _PROBE
        alone = self._logits([(a, b), (b, a)])
        together = self._logits([(a, b), (b, a), (c, d), (d, c)])[:2]
        return bool(np.max(np.abs(alone - together)) < _ROW_TOLERANCE)
