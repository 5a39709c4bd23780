"""Ranking metrics for labeled pairs (1 = same intent), numpy only."""

from __future__ import annotations

import numpy as np

PRECISION_TARGETS = (0.95, 0.98, 0.99)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic, ties given their average rank."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over runs of equal scores
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def precision_recall_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, precision, recall) for 'score >= threshold', one point per distinct score."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_pos = np.cumsum(sorted_labels)
    taken = np.arange(1, len(scores) + 1)
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # ties enter together
    precision = true_pos[last_of_run] / taken[last_of_run]
    recall = true_pos[last_of_run] / max(1, int(labels.sum()))
    return sorted_scores[last_of_run], precision, recall


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    _, precision, recall = precision_recall_curve(scores, labels)
    ok = precision >= target
    return float(recall[ok].max()) if ok.any() else 0.0


def threshold_for_precision(scores: np.ndarray, labels: np.ndarray, target: float) -> float | None:
    """The lowest threshold whose precision is still >= target (the most recall at that precision)."""
    thresholds, precision, recall = precision_recall_curve(scores, labels)
    ok = np.flatnonzero(precision >= target)
    return float(thresholds[ok[np.argmax(recall[ok])]]) if len(ok) else None


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=bool)
    accepted = scores >= threshold
    true_pos = int((accepted & labels).sum())
    return {
        "threshold": float(threshold),
        "precision": true_pos / int(accepted.sum()) if accepted.any() else float("nan"),
        "recall": true_pos / max(1, int(labels.sum())),
    }


def report(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    labels = np.asarray(labels, dtype=bool)
    return {
        "n": len(labels),
        "positives": int(labels.sum()),
        "auc": auc(scores, labels),
        "recall_at_precision": {f"{p:.2f}": recall_at_precision(scores, labels, p) for p in PRECISION_TARGETS},
        "at_threshold": at_threshold(scores, labels, threshold),
    }
