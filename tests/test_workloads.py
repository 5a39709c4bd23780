"""The built-in cache workloads: clusters from the datasets' own labels, in a fixed order."""

import gzip
import json

import pytest

from tools.eval.workloads import checklist_workload, limited, qqp_workload, read_jsonl, write_jsonl


def write_tsv(path, rows, extra=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "\t".join(["text_a", "text_b", "label", *extra])
    with gzip.open(path, "wt") as handle:
        handle.write(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


def test_qqp_clusters_are_the_connected_components_of_the_positive_pairs(tmp_path):
    write_tsv(
        tmp_path / "qqp" / "test.tsv.gz",
        [("a1", "a2", 1), ("a2", "a3", 1), ("b1", "a1", 0), ("b1", "b2", 1), ("c1", "a3", 0)],
    )
    requests = qqp_workload(tmp_path, seed=0)
    assert sorted(r["question"] for r in requests) == ["a1", "a2", "a3", "b1", "b2", "c1"]  # every question once
    cluster = {r["question"]: r["cluster"] for r in requests}
    assert cluster["a1"] == cluster["a2"] == cluster["a3"]  # a1~a2~a3 through a2
    assert cluster["b1"] == cluster["b2"] != cluster["a1"]  # a negative pair never joins clusters
    assert len({cluster["c1"], cluster["a1"], cluster["b1"]}) == 3
    assert qqp_workload(tmp_path, seed=0) == requests  # a fixed order for a seed
    orders = {tuple(r["question"] for r in qqp_workload(tmp_path, seed=s)) for s in range(8)}
    assert len(orders) > 1


def test_checklist_pairs_are_tenants_of_their_own(tmp_path):
    rows = [
        ("Is it hot?", "Is it not hot?", 0, "Negation", "t1"),
        ("How can I win?", "How do I win?", 1, "Vocab", "t2"),
    ]
    write_tsv(tmp_path / "checklist" / "test.tsv.gz", rows, extra=("capability", "test"))
    requests = checklist_workload(tmp_path)
    assert len(requests) == 4
    for first, second in zip(requests[::2], requests[1::2], strict=True):
        assert first["tenant"] == second["tenant"]
        row = next(r for r in rows if r[0] == first["question"])
        assert second["question"] == row[1]
        assert (first["cluster"] == second["cluster"]) == (row[2] == 1)
    assert requests[0]["tenant"] != requests[2]["tenant"]
    assert len(limited(requests, 3)) == 2  # a pair is never cut in half


def test_jsonl_round_trip_and_bad_lines(tmp_path):
    path = tmp_path / "w.jsonl"
    write_jsonl([{"question": "q1", "cluster": 7}, {"question": "q2", "cluster": "x", "tenant": "t"}], path)
    assert read_jsonl(path) == [{"question": "q1", "cluster": "7"}, {"question": "q2", "cluster": "x", "tenant": "t"}]
    path.write_text(json.dumps({"question": 3, "cluster": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"w\.jsonl:1"):
        read_jsonl(path)
