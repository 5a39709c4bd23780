"""`deja eval`: how well cosine alone and the verifier separate same-intent pairs.

Pairs (TSV, optionally gzipped, columns text_a, text_b, label) go through the real embedder
and verifier models, loaded in process from the same settings the services use. The verdicts
are reported at the gateway's configured thresholds (DEJA_SEMANTIC_MIN_SIMILARITY for cosine,
DEJA_VERIFIER_THRESHOLD for the verifier), plus threshold-free AUC and recall at precision.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import structlog

from deja.settings import load
from tools.eval.labeled import labeled_pairs
from tools.eval.metrics import report

# `make eval`: the test split of every labeled set the project was given.
SUITE = [("qqp", "qqp/test.tsv.gz", 4000), ("paws", "paws/test.tsv.gz", 0), ("mrpc", "mrpc/test.tsv.gz", 0),
         ("stsb", "stsb/test.tsv.gz", 0)]  # fmt: skip


def read_pairs(path: Path, limit: int = 0, seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    rows = labeled_pairs(path)
    if limit and len(rows) > limit:
        rows = random.Random(seed).sample(rows, limit)  # a fixed sample: runs stay comparable
    labels = np.array([label for _, _, label in rows], dtype=np.int8)
    return [a for a, _, _ in rows], [b for _, b, _ in rows], labels


class Models:
    """The embedder backend and verifier scorer, loaded once."""

    def __init__(self) -> None:
        from services.embedder.backends import create_backend
        from services.embedder.settings import EmbedderSettings
        from services.gateway.settings import GatewaySettings
        from services.verifier.scorer import load_scorer
        from services.verifier.settings import VerifierSettings

        self.embedder = create_backend(load(EmbedderSettings))
        self.scorer = load_scorer(load(VerifierSettings))
        gateway = load(GatewaySettings)
        self.cosine_threshold = gateway.semantic_min_similarity
        self.verifier_threshold = gateway.verifier_threshold

    def cosine(self, a: list[str], b: list[str], batch: int = 256) -> np.ndarray:
        out = []
        for start in range(0, len(a), batch):
            va = self.embedder.embed(a[start : start + batch])
            vb = self.embedder.embed(b[start : start + batch])
            out.append((va * vb).sum(axis=1))
        return np.concatenate(out)

    def verifier(self, a: list[str], b: list[str]) -> np.ndarray:
        return np.array([self.scorer.score(x, [y])[0] for x, y in zip(a, b, strict=True)], dtype=np.float64)


def evaluate(models: Models, path: Path, limit: int = 0, seed: int = 0) -> dict:
    a, b, labels = read_pairs(path, limit, seed)
    started = time.perf_counter()
    cosine = models.cosine(a, b)
    embedded = time.perf_counter()
    verdicts = models.verifier(a, b)
    verified = time.perf_counter()
    return {
        "pairs": str(path),
        "cosine": report(cosine, labels, models.cosine_threshold),
        "verifier": report(verdicts, labels, models.verifier_threshold),
        "seconds": {"embed": round(embedded - started, 2), "verify": round(verified - embedded, 2)},
    }


def _row(name: str, kind: str, result: dict) -> str:
    r = result[kind]
    at = r["at_threshold"]
    rp = r["recall_at_precision"]
    return (
        f"| {name} | {kind} | {r['n']} | {r['auc']:.3f} | {rp['0.95']:.3f} | {rp['0.99']:.3f} | "
        f"{at['threshold']:.2f} | {at['precision']:.3f} | {at['recall']:.3f} |"
    )


def run_eval(pairs: str | None, datasets: str, limit: int, seed: int) -> None:
    # Model-loading log lines go to stderr: stdout carries only the JSON or the table.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    models = Models()
    if pairs:
        print(json.dumps(evaluate(models, Path(pairs), limit, seed), indent=2))
        return
    root = Path(datasets)
    if not root.is_dir():
        sys.exit(f"deja eval: no datasets folder at {root} (give --datasets or --pairs)")
    print("| set | scorer | n | AUC | recall@P0.95 | recall@P0.99 | threshold | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, relative, default_limit in SUITE:
        result = evaluate(models, root / relative, limit or default_limit, seed)
        print(_row(name, "cosine", result))
        print(_row(name, "verifier", result), flush=True)
