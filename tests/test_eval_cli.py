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
        [sys.executable, "-m", "deja", "eval", "--pairs", str(pairs)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for scorer in ("cosine", "verifier"):
        assert report[scorer]["n"] == 4 and report[scorer]["positives"] == 2
        assert report[scorer]["auc"] == 1.0  # these pairs are easy for both
        assert set(report[scorer]["recall_at_precision"]) == {"0.95", "0.98", "0.99"}
        assert {"precision", "recall", "threshold"} <= set(report[scorer]["at_threshold"])
