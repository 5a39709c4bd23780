"""Cache workloads with known right answers, for `deja eval --workload`.

A workload is a list of requests in ask order, one JSON object per line in a file:
`{"question": ..., "cluster": ..., "tenant": ...}` (tenant optional). Every question of a cluster
may be served the same answer; a question of another cluster may not. So when the mock provider
answers each question with its cluster's answer, a served hit is right exactly when the entry it
came from was asked in the asked question's cluster.

Built-in workloads, generated from the evaluation datasets (`../shared/datasets`):
- `qqp`: every question of the QQP test split, clustered by the split's own positive pairs
  (connected components), shuffled with a fixed seed;
- `checklist`: each CheckList test pair as its own tenant, `text_a` then `text_b` (one cluster
  when the pair is labeled a duplicate);
- `coding`: a coding-agent workload from templates (`tools.eval.workload_coding`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from tools.eval.labeled import pair_rows

BUILT_IN = ("qqp", "checklist", "coding")


class _Components:
    """Union-find over questions: the clusters are the connected components of the positive pairs."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]  # path halving
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # deterministic root, whatever the row order


def qqp_workload(datasets: Path, seed: int = 0) -> list[dict]:
    """Every question of qqp/test once, clustered by the split's positive pairs, in a seeded order."""
    components = _Components()
    for row in pair_rows(datasets / "qqp" / "test.tsv.gz"):
        components.find(row["text_a"]), components.find(row["text_b"])
        if row["label"] == "1":
            components.union(row["text_a"], row["text_b"])
    questions = sorted(components.parent)
    ids: dict[str, str] = {}
    requests = []
    for question in questions:
        root = components.find(question)
        requests.append({"question": question, "cluster": ids.setdefault(root, f"qqp-{len(ids)}")})
    random.Random(seed).shuffle(requests)
    return requests


def checklist_workload(datasets: Path, seed: int = 0) -> list[dict]:
    """Each pair of checklist/test as its own tenant: text_a asked first, then text_b. Pairs in a
    seeded order (so a `--limit` sample covers every test), each pair's two requests together."""
    rows = pair_rows(datasets / "checklist" / "test.tsv.gz")
    random.Random(seed).shuffle(rows)
    requests = []
    for i, row in enumerate(rows):
        tenant = f"checklist-{i}"
        first = f"{tenant}-a"
        requests.append({"question": row["text_a"], "cluster": first, "tenant": tenant, "test": row["test"]})
        second = first if row["label"] == "1" else f"{tenant}-b"
        requests.append({"question": row["text_b"], "cluster": second, "tenant": tenant, "test": row["test"]})
    return requests


def coding_workload(seed: int = 0) -> list[dict]:
    from tools.eval.workload_coding import coding_workload as generate

    return generate(seed=seed)


def built_in(name: str, datasets: Path, seed: int = 0) -> list[dict]:
    if name == "qqp":
        return qqp_workload(datasets, seed)
    if name == "checklist":
        return checklist_workload(datasets, seed)
    if name == "coding":
        return coding_workload(seed)
    raise ValueError(f"unknown workload {name!r}: one of {', '.join(BUILT_IN)} or a .jsonl file")


def limited(requests: list[dict], limit: int) -> list[dict]:
    """The first `limit` requests; a checklist pair is never cut in half."""
    if not limit or limit >= len(requests):
        return requests
    cut = requests[:limit]
    if len(cut) % 2 and cut[-1].get("tenant", "").startswith("checklist-"):
        cut = cut[:-1]
    return cut


def read_jsonl(path: Path) -> list[dict]:
    requests = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record.get("question"), str) or not isinstance(record.get("cluster"), str | int):
                raise ValueError(f"{path}:{number}: each line needs a string 'question' and a 'cluster'")
            record["cluster"] = str(record["cluster"])
            requests.append(record)
    return requests


def write_jsonl(requests: Iterable[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in requests:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
