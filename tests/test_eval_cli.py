import gzip
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_deja_eval_prints_one_json_object_with_both_scorers(tmp_path):
    pairs = tmp_path / "pairs.tsv.gz"
    rows = [
        ("How do I center a div?", "How can I center a div with CSS?", 1),
        ("How do I sort a list in Python?", "What is the best way to sort a Python list?", 1),
        ("How do I center a div?", "What is the capital of France?", 0),
        ("How do I sort a list in Python?", "How tall is Mount Everest?", 0),
    ]
    with gzip.open(pairs, "wt") as handle:
        handle.write("text_a\ttext_b\tlabel\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in rows))
    result = subprocess.run(
        [sys.executable, "-m", "tools", "eval", "--pairs", str(pairs)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for scorer in ("cosine", "verifier"):
        assert report[scorer]["n"] == 4 and report[scorer]["positives"] == 2
        assert report[scorer]["auc"] == 1.0  # these pairs are easy for both
        assert set(report[scorer]["recall_at_precision"]) == {"0.95", "0.98", "0.99"}
        assert {"precision", "recall", "threshold"} <= set(report[scorer]["at_threshold"])


def test_deja_eval_workload_replays_through_the_cluster_and_scores_hits(tmp_path):
    # Two intents with a paraphrase each, and a near-identical trap of another intent.
    workload = [
        {"question": "How do I merge two dictionaries in Python?", "cluster": "merge"},
        {"question": "How do I sort a list in descending order in Python?", "cluster": "desc"},
        {"question": "How can I merge two dicts in Python?", "cluster": "merge"},
        {"question": "How do I sort a list in ascending order in Python?", "cluster": "asc"},
        {"question": "What's the way to merge two Python dictionaries?", "cluster": "merge"},
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in workload))
    result = subprocess.run(
        [sys.executable, "-m", "tools", "eval", "--workload", str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["workload"] == "tiny" and report["requests"] == 5
    deja = {r["judge"]: r for r in report["rows"] if r["pipeline"] == "deja"}
    cosine = [r for r in report["rows"] if r["pipeline"] == "cosine"]
    assert set(deja) == {"on", "off"} and len(cosine) == 2
    on, off = deja["on"], deja["off"]
    assert on["repeats"] == 2 and on["client_errors"] == 0
    # The mock judges from the ground truth: the paraphrases are served, the trap never is.
    assert on["semantic_hits"] == on["judged_hits"] == 2 and on["served_precision"] == 1.0
    assert on["repeats_served"] == 1.0 and on["wrong_per_1000"] == 0.0 and on["judge_calls_per_1000"] > 0
    # Judge off: a new tenant has no evidence, so nothing is served unasked (never over-served).
    assert off["semantic_hits"] == 0 and off["judge_calls_per_1000"] == 0.0
    for row in report["rows"]:
        assert {
            "pipeline", "max_error", "judge", "judge_noise", "threshold", "semantic_hits", "served_precision",
            "served_precision_low95", "repeats_served", "wrong_per_1000", "judge_calls_per_1000", "hit_p50_ms",
            "hit_p99_ms",
        } <= set(row)  # fmt: skip
    assert on["threshold"] is None  # five requests are no evidence: nothing is served unasked
