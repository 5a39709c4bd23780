"""The seam between the verifier service and a model: `PairScorer`.

A scorer turns (query, candidates) into P(same intent) per candidate. The service only sees
this interface, so a new backend (Triton, MLX) or a new model (the trained same-intent
cross-encoder) drops in without touching the gRPC side.

Scores are **symmetric**: "does B ask what A asks" has no direction, and a cross-encoder
reads its two segments differently, so each pair is scored both ways and the two logits are
averaged before the logit -> probability step. Averaging logits (rather than probabilities)
keeps one confident direction from being flattened by the sigmoid's saturation, and it is
exactly symmetric: score(a, [b]) == score(b, [a]).

Logit -> probability goes through a `Calibration`. Today that is the plain sigmoid: the
bundled ms-marco model is not calibrated for same intent (or at all), so its "probability"
is only a monotone score. The trained verifier ships with a fitted calibration (e.g. Platt
scaling or isotonic on a held-out split) and passes it here; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from deja.v1 import common_pb2

# Combined (symmetric) logits -> probabilities, elementwise and monotone.
Calibration = Callable[[np.ndarray], np.ndarray]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Uncalibrated logit -> (0, 1); the tanh form does not overflow for large |logit|."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


class PairScorer(Protocol):
    @property
    def info(self) -> common_pb2.ModelInfo:
        """The model actually served (model_version is a content hash of its weights)."""
        ...

    def score(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """float32 probabilities, one per candidate, in the candidates' order. Blocking: call it
        from a worker thread, never on the event loop."""
        ...


def load_scorer(settings) -> PairScorer:
    """The scorer named by `settings.backend` (VerifierSettings has already rejected the others).

    Backends import their runtime lazily: `triton_scorer` and `mlx_scorer` each expose
    `create(settings) -> PairScorer`."""
    if settings.backend == "triton":
        from services.verifier import triton_scorer

        return triton_scorer.create(settings)
    if settings.backend == "mlx":
        from services.verifier import mlx_scorer

        return mlx_scorer.create(settings)
    from services.verifier.onnx_scorer import OnnxPairScorer

    return OnnxPairScorer(
        settings.resolved_model_dir(),
        model_id=settings.resolved_model_id(),
        max_length=settings.max_length,
        threads=settings.threads,
    )
