"""The one reader of the shared dataset files (`deja eval`, the workloads, training, benches, the graph check).

Every labeled set under ../shared/datasets, and what mine.py writes, is a TSV with a header
(`text_a`, `text_b`, `label`, sometimes more columns), usually gzipped; QQP's clusters are a gzipped
JSON line per question. Standard library only: the training modules that read these also run in
`.venv-export`, which has none of the runtime's packages.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path


def tsv_rows(path: Path, quoting: int = csv.QUOTE_MINIMAL) -> list[dict[str, str]]:
    """Every row of a (gzipped when the name ends in .gz) TSV file, as header -> text."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=quoting))


def pair_rows(path: Path) -> list[dict[str, str]]:
    """The rows with both texts (a few sets have pairs with an empty side), every column kept."""
    return [r for r in tsv_rows(path) if r["text_a"] and r["text_b"]]


def labeled_pairs(path: Path) -> list[tuple[str, str, int]]:
    """(text_a, text_b, label) of each row with both texts, in file order."""
    return [(r["text_a"], r["text_b"], int(r["label"])) for r in pair_rows(path)]


def cluster_records(path: Path) -> Iterator[dict]:
    """QQP's clusters.jsonl.gz, a record ({"cluster_id", "question", ...}) at a time, in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def cluster_members(path: Path) -> dict[int, list[str]]:
    """Cluster id -> its questions, in file order."""
    members: dict[int, list[str]] = {}
    for record in cluster_records(path):
        members.setdefault(record["cluster_id"], []).append(record["question"])
    return members
