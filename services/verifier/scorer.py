"""The seam between the verifier service and a model: `PairScorer`, and `load_scorer` to pick one.

A scorer turns (query, candidates) into P(same intent) per candidate. The service only sees
this interface, so a new backend (Triton, MLX) or a new model (the trained same-intent
cross-encoder) drops in without touching the gRPC side. What the backends share (symmetric
scoring, calibration, the model version) is in cross_encoder.py, below them; this module is on
top, and keeps those names importable from here for the tools and deploy scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from deja.v1 import common_pb2
from services.verifier.cross_encoder import (
    PAIR_ORDERS,
    Calibration,
    CrossEncoderScorer,
    load_calibration,
    load_pair_order,
    model_version,
    sigmoid,
)

__all__ = [
    "PAIR_ORDERS",
    "Calibration",
    "CrossEncoderScorer",
    "PairScorer",
    "load_calibration",
    "load_pair_order",
    "load_scorer",
    "model_version",
    "sigmoid",
]


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
        calibration=load_calibration(settings.resolved_model_dir()),
    )
