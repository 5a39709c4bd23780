"""Mine the pairs the verifier actually sees: each QQP train question's nearest cached neighbours.

Runs in the runtime venv (no torch), with the embedder the cache uses:

    .venv/bin/python -m tools.training.mine --datasets ../shared/datasets

The pool is every question of QQP train (a cache filled with them). For a sample of its questions,
the top-K neighbours by cosine, at or above the gateway's prefilter less a margin, are labelled by
`qqp/clusters.jsonl.gz`: same cluster = 1, another cluster = 0 (a hard negative: a near neighbour
that the cache must not serve). Only clusters whose questions all appear in QQP train are used,
so no dev or test question is ever seen. Queries are drawn from clusters of two or more (where a
right neighbour exists) and, at `--singleton-share`, from single-question clusters (a miss's list).

Cluster labels are right for positives (a chain of Quora's duplicate pairs) but often wrong for the
nearest negatives: two duplicates that no labelled pair links sit in different clusters, and at
cosine >= 0.85 most "negatives" read as true paraphrases. So every pair is also scored by the
verifier shipped at mining time (`p_previous`); Recipe.mined_negative_max_p drops the negatives it
confidently calls duplicates.

Writes <out> (gzip TSV: text_a, text_b, label, rank, cosine, p_previous), read by
data.training_rows when Recipe.qqp_mined > 0. Deterministic for a seed, an embedder and a verifier.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import time
from pathlib import Path

import numpy as np

from services.verifier.settings import SHIPPED_MODEL_DIR
from tools.eval.labeled import cluster_members
from tools.training.data import MINED_PATH, read_split


def clusters_of(datasets: Path, pool: set[str]) -> dict[str, int]:
    """Question -> cluster id, for clusters whose questions are all in `pool` (QQP train)."""
    members = cluster_members(datasets / "qqp" / "clusters.jsonl.gz")
    return {q: cid for cid, qs in members.items() if all(q in pool for q in qs) for q in qs}


def embed_all(texts: list[str], batch: int = 256) -> np.ndarray:
    from deja.settings import load
    from services.embedder.backends import create_backend
    from services.embedder.settings import EmbedderSettings

    model = create_backend(load(EmbedderSettings))
    return np.concatenate([model.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]).astype(np.float32)


def neighbours(vectors: np.ndarray, queries: list[int], k: int, floor: float) -> list[list[tuple[int, float]]]:
    """Top-k (index, cosine) of each query among all vectors, itself excluded, cosine >= floor."""
    out = []
    for start in range(0, len(queries), 512):
        chunk = queries[start : start + 512]
        sims = vectors[chunk] @ vectors.T
        sims[np.arange(len(chunk)), chunk] = -2.0
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for row, cols in enumerate(top):
            cols = cols[np.argsort(-sims[row, cols])]
            out.append([(int(c), float(sims[row, c])) for c in cols if sims[row, c] >= floor])
    return out


def previous_scores(rows: list[tuple], model_dir: Path) -> list[float]:
    """The shipped verifier's calibrated p for each (query, neighbour), one call per query."""
    from services.verifier.onnx_scorer import OnnxPairScorer
    from services.verifier.scorer import load_calibration

    scorer = OnnxPairScorer(model_dir, model_id=model_dir.name, threads=2, calibration=load_calibration(model_dir))
    by_query: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_query.setdefault(row[0], []).append(i)
    out = [0.0] * len(rows)
    for query, members in by_query.items():
        for i, p in zip(members, scorer.score(query, [rows[i][1] for i in members]), strict=True):
            out[i] = round(float(p), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=MINED_PATH)
    parser.add_argument("--queries", type=int, default=12000, help="questions asked of the pool")
    parser.add_argument("--singleton-share", type=float, default=0.25, help="share of queries with no right answer")
    parser.add_argument("--k", type=int, default=5, help="neighbours per query (the gateway's DEJA_SEMANTIC_K)")
    parser.add_argument("--floor", type=float, default=0.6, help="lowest cosine kept (the prefilter is 0.70)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--previous", type=Path, default=SHIPPED_MODEL_DIR, help="the verifier that scores p_previous")
    args = parser.parse_args()

    started = time.time()
    rng = random.Random(args.seed)
    pool = sorted({t for a, b, _, _ in read_split(args.datasets, "qqp", "train") for t in (a, b)})
    cluster = clusters_of(args.datasets, set(pool))
    sizes: dict[int, int] = {}
    for cid in cluster.values():
        sizes[cid] = sizes.get(cid, 0) + 1
    grouped = [i for i, q in enumerate(pool) if sizes.get(cluster.get(q, -1), 0) >= 2]
    single = [i for i, q in enumerate(pool) if q in cluster and sizes[cluster[q]] == 1]
    n_single = int(args.queries * args.singleton_share)
    queries = rng.sample(grouped, min(len(grouped), args.queries - n_single)) + rng.sample(single, n_single)
    vectors = embed_all(pool)
    seen: set[frozenset[str]] = set()
    rows = []
    for qi, found in zip(queries, neighbours(vectors, queries, args.k, args.floor), strict=True):
        for rank, (ci, cos) in enumerate(found, start=1):
            a, b = pool[qi], pool[ci]
            if frozenset((a, b)) in seen:
                continue
            seen.add(frozenset((a, b)))
            # A neighbour outside the train-only clusters has no label we trust: skip it.
            if b not in cluster:
                continue
            rows.append((a, b, int(cluster[a] == cluster[b]), rank, round(cos, 4)))
    rows = [(*row, p) for row, p in zip(rows, previous_scores(rows, args.previous), strict=True)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text_a", "text_b", "label", "rank", "cosine", "p_previous"])
        writer.writerows(rows)
    positives = sum(r[2] for r in rows)
    print(json.dumps({"pool": len(pool), "queries": len(queries), "pairs": len(rows), "positives": positives,
                      "minutes": round((time.time() - started) / 60, 1), "out": str(args.out)}))  # fmt: skip


if __name__ == "__main__":
    main()
