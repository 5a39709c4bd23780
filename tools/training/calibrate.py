"""Platt scaling of the verifier's symmetric logit into P(same intent), fitted on held-out dev data.

p = sigmoid(a * logit + b), (a, b) minimising log-loss on dev pairs, with Platt's smoothed targets
(positives (n+ + 1)/(n+ + 2), negatives 1/(n- + 2)) so a separable dev set cannot push |a| to
infinity. Torch-free: only numpy. The result is the model folder's calibration.json, which
`services.verifier.scorer.load_calibration` turns back into the scorer's `Calibration`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Newton's method on the two Platt parameters, each step halved until the log-loss drops; (a, b)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    positives, negatives = y.sum(), len(y) - y.sum()
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(a: float, b: float) -> float:
        z = a * x + b  # log(1 + e^z) - t*z, computed without overflow
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    a, b = 0.0, float(np.log((positives + 1) / (negatives + 1)))
    current = loss(a, b)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * x + b)))
        w = p * (1 - p)
        grad = np.array([np.sum((p - target) * x), np.sum(p - target)])
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        previous, current = current, loss(a, b)
        if previous - current < 1e-10 * max(1.0, abs(previous)):
            break
    return float(a), float(b)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(labels[mask].mean() - probabilities[mask].mean())
    return float(error)


def write(model_dir: Path, a: float, b: float, fitted_on: dict, pair_order: str) -> None:
    """`pair_order` is how the fitted logits were made (scorer.load_pair_order reads it back)."""
    record = {"method": "platt", "a": round(a, 6), "b": round(b, 6), "pair_order": pair_order, "fitted_on": fitted_on}
    (model_dir / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
