import numpy as np
import pytest

from tools.eval.metrics import at_threshold, auc, recall_at_precision, report, threshold_for_precision


def test_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(200), 1)  # many ties
    labels = rng.random(200) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert auc(scores, labels) == pytest.approx(pairwise)
    assert auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert auc(np.array([0.9, 0.1]), np.array([0, 1])) == 0.0


def test_recall_at_precision_and_thresholds():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 1])
    assert recall_at_precision(scores, labels, 0.99) == 0.5  # top two are right, the third is wrong
    assert recall_at_precision(scores, labels, 0.75) == 0.75  # 3 of the top 4
    assert threshold_for_precision(scores, labels, 0.75) == 0.6
    assert at_threshold(scores, labels, 0.6) == {"threshold": 0.6, "precision": 0.75, "recall": 0.75}
    tied = np.array([0.9, 0.9, 0.1])
    assert recall_at_precision(tied, np.array([1, 0, 1]), 0.9) == 0.0  # ties can't be split


def test_report_shape():
    out = report(np.array([0.2, 0.8]), np.array([0, 1]), 0.5)
    assert set(out) == {"n", "positives", "auc", "recall_at_precision", "at_threshold"}
    assert set(out["recall_at_precision"]) == {"0.95", "0.98", "0.99"}
