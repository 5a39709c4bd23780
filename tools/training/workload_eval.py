"""The verifier where the cache decides: a cache workload replayed with the verifier as the only judge.

Runs in the runtime venv (no torch), on the embedder's vectors and the verifier's own scorer:

    .venv/bin/python -m tools.training.workload_eval --model services/verifier/model \
        [--baseline OTHER_MODEL_DIR] [--workload qqp]

Each request is asked in order (tools.eval.workloads: a served answer is right when the entry it came
from is in the asked question's cluster). As the gateway does with a fixed threshold: the K nearest
cached questions of the tenant with cosine >= the prefilter (DEJA_SEMANTIC_K, DEJA_SEMANTIC_MIN_
SIMILARITY) are scored, and the best is served when its calibrated p >= the threshold; the same text
asked again is an exact hit; a miss is cached. Against it, the plain cosine cache at the same share
of repeats served (tools.eval.workload.cosine_matching). Rows:

- `reference`: the threshold 0.5 of the gateway before the error budget, for --baseline (the model
  shipped before) and for --model; each new-model row's share is matched by cosine;
- `at baseline share`: --model at the threshold that serves the baseline's share of repeats;
- `operating points`: --model at p >= 0.5, 0.7 and 0.9.

Writes <model>/workload.json, renders the model card again with it, and prints it. Run after
evaluate.py, which fits the calibration the thresholds read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import structlog

from deja.settings import load
from services.gateway.settings import GatewaySettings
from services.verifier.onnx_scorer import OnnxPairScorer
from services.verifier.scorer import load_calibration
from tools.eval.workload import cosine_matching, neighbours, wilson_low
from tools.eval.workloads import built_in
from tools.training import model_card

OPERATING_POINTS = (0.5, 0.7, 0.9)
REFERENCE_THRESHOLD = 0.5


class Replay:
    """One workload on one model: verifier scores are memoised per (request, entry) pair."""

    def __init__(
        self, requests: list[dict], index: np.ndarray, cosine: np.ndarray, model_dir: Path, nearest_first: bool = True
    ) -> None:
        gateway = load(GatewaySettings, {})
        self.k, self.floor = gateway.semantic_k, gateway.semantic_min_similarity
        self.nearest_first = nearest_first  # the gateway's rule (DEJA_VERIFY_NEAREST_FIRST)
        self.requests, self.index, self.cosine = requests, index, cosine
        self.scorer = OnnxPairScorer(model_dir, model_id=model_dir.name, calibration=load_calibration(model_dir))
        self.memo: dict[tuple[int, int], float] = {}

    def _scores(self, i: int, candidates: list[int]) -> list[float]:
        todo = [j for j in candidates if (i, j) not in self.memo]
        if todo:
            texts = [self.requests[j]["question"] for j in todo]
            for j, p in zip(todo, self.scorer.score(self.requests[i]["question"], texts), strict=True):
                self.memo[(i, j)] = float(p)
        return [self.memo[(i, j)] for j in candidates]

    def run(self, threshold: float) -> dict:
        requests, n = self.requests, len(self.requests)
        cached = np.zeros(n, dtype=bool)
        texts: dict[tuple[str, str], int] = {}
        clusters: set[tuple[str, str]] = set()
        hits = right = repeats = served = exact = 0
        cost = {"lookups": 0, "calls": 0, "verified": 0}
        for i, request in enumerate(requests):
            tenant, cluster = request.get("tenant", ""), request["cluster"]
            repeat = (tenant, cluster) in clusters
            repeats += repeat
            same = texts.get((tenant, request["question"]))
            if same is not None:  # L1: the same text again
                exact += 1
                served += repeat and requests[same]["cluster"] == cluster
                continue
            pairs = zip(self.index[i], self.cosine[i], strict=True)
            near = [int(j) for j, c in pairs if j >= 0 and cached[j] and c >= self.floor][: self.k]
            best = self._pick(i, near, threshold, cost) if near else None
            if best is not None:
                ok = requests[best]["cluster"] == cluster
                hits += 1
                right += ok
                served += ok and repeat
                continue
            cached[i] = True
            texts[(tenant, request["question"])] = i
            clusters.add((tenant, cluster))
        return {
            "threshold": round(threshold, 4), "requests": n, "semantic_hits": hits, "exact_hits": exact,
            "served_precision": round(right / hits, 4) if hits else None,
            "served_precision_low95": round(wilson_low(right, hits), 4) if hits else None,
            "repeats_served": round(served / repeats, 4) if repeats else None,
            "wrong_per_1000": round(1000 * (hits - right) / max(n, 1), 2),
            "verify_calls_per_lookup": round(cost["calls"] / max(cost["lookups"], 1), 3),
            "candidates_verified_per_lookup": round(cost["verified"] / max(cost["lookups"], 1), 3),
        }  # fmt: skip

    def _pick(self, i: int, near: list[int], threshold: float, cost: dict) -> int | None:
        """The entry the gateway serves for request `i` at `threshold`, if any, counting the verifier's
        work: nearest first (alone, served if it clears), else the best of the rest; or all at once."""
        cost["lookups"] += 1
        batches = [near[:1], near[1:]] if self.nearest_first and len(near) > 1 else [near]
        for batch in batches:
            scores = self._scores(i, batch)
            cost["calls"] += 1
            cost["verified"] += len(batch)
            if max(scores) >= threshold:
                return batch[int(np.argmax(scores))]
        return None

    def matching(self, target: float) -> dict:
        """The row whose share of repeats served is closest to `target` (bisection on the threshold)."""
        lo, hi, best = 0.0, 1.0, None
        for _ in range(12):
            mid = (lo + hi) / 2
            row = self.run(mid)
            if best is None or abs(row["repeats_served"] - target) < abs(best["repeats_served"] - target):
                best = row
            lo, hi = (mid, hi) if row["repeats_served"] > target else (lo, mid)
        return best


def with_cosine(row: dict, index, cosine, requests) -> dict:
    match = cosine_matching(index, cosine, requests, row["repeats_served"])
    keep = ("threshold", "served_precision", "served_precision_low95", "repeats_served", "wrong_per_1000")
    row["cosine"] = {k: match[k] for k in keep}
    if row["served_precision"] is not None and match["served_precision"] is not None:
        row["above_cosine"] = round(row["served_precision"] - match["served_precision"], 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("services/verifier/model"))
    parser.add_argument("--baseline", type=Path, help="another model folder: the share its threshold 0.5 serves")
    parser.add_argument("--workload", default="qqp", choices=("qqp", "checklist", "coding"))
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-at-once", action="store_true", help="verify every candidate in one call (the old rule)")
    parser.add_argument("--out", type=Path, help="workload.json here (default: the model folder)")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    started = time.time()

    from tools.training.evaluate import embedder

    requests = built_in(args.workload, args.datasets, args.seed)
    model = embedder()
    questions = [r["question"] for r in requests]
    vectors = np.concatenate([model.embed(questions[i : i + 256]) for i in range(0, len(questions), 256)])
    index, cosine = neighbours(vectors, [r.get("tenant", "") for r in requests])

    replay = Replay(requests, index, cosine, args.model, nearest_first=not args.all_at_once)
    result: dict = {"workload": args.workload, "requests": len(requests), "k": replay.k, "prefilter": replay.floor}
    reference = with_cosine(replay.run(REFERENCE_THRESHOLD), index, cosine, requests)
    result["reference"] = {"model": reference}
    target = reference["repeats_served"]
    if args.baseline:
        base = Replay(requests, index, cosine, args.baseline, nearest_first=not args.all_at_once)
        base = base.run(REFERENCE_THRESHOLD)
        base = with_cosine(base, index, cosine, requests)
        result["reference"]["baseline"] = {"folder": str(args.baseline), **base}
        target = base["repeats_served"]
        result["at_baseline_share"] = with_cosine(replay.matching(target), index, cosine, requests)
    result["operating_points"] = [with_cosine(replay.run(t), index, cosine, requests) for t in OPERATING_POINTS]
    result["minutes"] = round((time.time() - started) / 60, 1)
    result["nearest_first"] = replay.nearest_first
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
        return
    (args.model / "workload.json").write_text(json.dumps(result, indent=1) + "\n")
    metrics = args.model / "metrics.json"
    if metrics.is_file():  # evaluate.py wrote the card before this table existed: render it again
        model_card.write(args.model, json.loads(metrics.read_text()))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
