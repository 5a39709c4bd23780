"""ONNX Runtime cross-encoder: the embedded CPU backend of the verifier.

Any BERT-style sequence-pair classifier exported to ONNX fits: a directory with `model.onnx`
(inputs `input_ids`, `attention_mask`, optionally `token_type_ids`; output logits shaped
[batch, 1], or [batch, 2] for a two-class head) and the `tokenizer.json` it was trained with.

Batching. Both directions of a pair always go in one inference call. Whether *candidates*
share a call depends on the model: dynamically quantized int8 models (the bundled one) pick
one activation scale per tensor, over every row of the batch and its padding, so a
candidate's score would depend on which other candidates came with it. A cache must give
the same answer for the same pair, so at load time the scorer checks whether rows are
independent and, if not, runs one call per candidate (each call holds only that pair's two
rows, which have the same length: no padding, and the shared scale is itself symmetric).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import blake3
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from deja.logs import get_logger
from deja.v1 import common_pb2
from services.verifier.scorer import Calibration, sigmoid

log = get_logger("deja.verifier")

# Two pairs of different lengths: enough to expose a batch-wide quantization scale.
_PROBE = [
    ("How do I center a div?", "center a div in css"),
    ("What is the time complexity of binary search on a sorted array?", "Explain how quicksort partitions an array."),
]
_ROW_TOLERANCE = 1e-4  # logits; float reordering across batch shapes stays far below this


class OnnxPairScorer:
    def __init__(
        self,
        model_dir: Path,
        *,
        model_id: str,
        max_length: int = 256,
        threads: int = 1,
        calibration: Calibration | None = None,
    ) -> None:
        weights = (model_dir / "model.onnx").read_bytes()
        self._info = common_pb2.ModelInfo(
            model_id=model_id,
            model_version=blake3.blake3(weights).hexdigest()[:16],
            dimension=0,
            backend="onnx",
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The verifier shares its cores with the embedder and the gateway: idle threads must sleep, not spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(weights, options, providers=["CPUExecutionProvider"])
        del weights

        names = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ValueError(f"{model_dir}/model.onnx: needs inputs input_ids and attention_mask, has {sorted(names)}")
        self._wants_type_ids = "token_type_ids" in names
        self._output = self._session.get_outputs()[0].name

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        shipped = self._tokenizer.padding or {}  # shipped files pad to a fixed 128/512: keep only the pad token
        self._tokenizer.no_padding()
        self._tokenizer.enable_padding(pad_id=shipped.get("pad_id", 0), pad_token=shipped.get("pad_token", "[PAD]"))
        self._tokenizer.enable_truncation(max_length)  # longest_first: trims the longer text of the pair

        self._calibrate = calibration or sigmoid
        self.batches_candidates = self._rows_are_independent()
        log.info(
            "verifier_model_loaded",
            model_id=model_id,
            model_version=self._info.model_version,
            max_length=max_length,
            threads=threads,
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

    def _symmetric_logits(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """Mean of logit(query, c) and logit(c, query), both directions in one inference call."""
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
        out = self._session.run([self._output], feed)[0].astype(np.float64)
        if out.ndim == 2 and out.shape[1] == 2:
            return out[:, 1] - out[:, 0]  # two-class head: log-odds of "same", so sigmoid == softmax[1]
        return out.reshape(len(pairs))

    def _rows_are_independent(self) -> bool:
        (a, b), (c, d) = _PROBE
        alone = self._logits([(a, b), (b, a)])
        together = self._logits([(a, b), (b, a), (c, d), (d, c)])[:2]
        return bool(np.max(np.abs(alone - together)) < _ROW_TOLERANCE)
