"""Calibrate and measure an exported verifier; write calibration.json, metrics.json and MODEL_CARD.md.

Runs in the runtime venv (no torch), through the same `OnnxPairScorer` the service uses:

    .venv/bin/python -m tools.training.evaluate --model services/verifier/model

1. Calibration: symmetric logits on held-out dev pairs (QQP dev sample + STS-B dev; never the
   test splits) -> Platt (a, b) -> <model>/calibration.json, and the same for <model>/fp32.
2. Test metrics (QQP, PAWS, MRPC, STS-B test splits; int8, and fp32 with --fp32-test): AUC, recall
   at precision 0.95/0.99, precision and recall at p >= 0.5, expected calibration error; cosine
   alongside.
3. Operating points: the gateway's default threshold (0.5) and the lowest calibrated threshold with
   precision >= 0.95 on QQP dev; how much of the verifier's recall there survives each cosine
   prefilter, and how often a duplicate is among the top-K cosine neighbours of a pool of questions
   (the candidate count).
4. A trap table, and latency of 5 candidates for one query (bench.scorer_latency).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import structlog

from deja.settings import load
from services.gateway.settings import GatewaySettings
from services.verifier.onnx_scorer import OnnxPairScorer
from services.verifier.scorer import load_calibration, sigmoid
from tools.eval.metrics import auc, recall_at_precision, report, threshold_for_precision
from tools.training import calibrate, model_card
from tools.training.data import calibration_rows, checklist_tests, read_split
from tools.training.traps import TRAPS

SEED = 13
TEST_SETS = ("qqp", "paws", "mrpc", "stsb", "checklist")
PREFILTERS = [round(x, 2) for x in np.arange(0.50, 0.91, 0.05)]
GATEWAY = load(GatewaySettings, {})  # the defaults the gateway runs with (threshold, prefilter, K)


# The operating point the prefilter is measured at: the gateway's fixed threshold before the error budget
# (which now decides what is served per tenant; DEJA_VERIFIER_THRESHOLD is only the judge's floor).
REFERENCE_THRESHOLD = 0.5
PAIR_ORDER = "canonical"  # trained on both orders: one sorted row per pair (see scorer.py)


def raw_scorer(model_dir: Path, pair_order: str = PAIR_ORDER) -> OnnxPairScorer:
    """Symmetric logits out (identity calibration); threads=1 as the service's default."""
    return OnnxPairScorer(model_dir, model_id=model_dir.name, calibration=lambda z: z, pair_order=pair_order)


def logits(scorer: OnnxPairScorer, rows) -> np.ndarray:
    return np.array([scorer.score(a, [b])[0] for a, b, _, _ in rows], dtype=np.float64)


def fit(model_dir: Path, rows) -> tuple[np.ndarray, tuple[float, float]]:
    z = logits(raw_scorer(model_dir), rows)
    labels = np.array([r[2] for r in rows])
    a, b = calibrate.fit_platt(z, labels)
    sources = sorted({r[3] for r in rows})
    fitted_on = {"pairs": len(rows), "positives": int(labels.sum()), "sets": sources}
    calibrate.write(model_dir, a, b, fitted_on, PAIR_ORDER)
    return z, (a, b)


def embedder():
    from services.embedder.backends import create_backend
    from services.embedder.settings import EmbedderSettings

    return create_backend(load(EmbedderSettings))


def cosine(model, a: list[str], b: list[str]) -> np.ndarray:
    out = []
    for start in range(0, len(a), 256):
        out.append((model.embed(a[start : start + 256]) * model.embed(b[start : start + 256])).sum(axis=1))
    return np.concatenate(out)


def neighbour_coverage(model, rows, ks=(1, 3, 5, 10)) -> dict[str, float]:
    """Share of positive pairs (a, b) whose b is among a's top-K cosine neighbours in the pool of all
    questions of the split: what a cache with that pool retrieves before the verifier sees it."""
    pool = sorted({t for a, b, _, _ in rows for t in (a, b)})
    index = {t: i for i, t in enumerate(pool)}
    vectors = np.concatenate([model.embed(pool[i : i + 256]) for i in range(0, len(pool), 256)])
    positives = [(index[a], index[b]) for a, b, label, _ in rows if label == 1]
    ranks = []
    for qa, qb in positives:
        sims = vectors @ vectors[qa]
        sims[qa] = -2.0  # the question itself is not a candidate
        ranks.append(int((sims > sims[qb]).sum()) + 1)
    ranks = np.array(ranks)
    return {"pool": len(pool), **{f"top{k}": float((ranks <= k).mean()) for k in ks}}


def latency(model_dir: Path, calibration, iterations: int = 300) -> dict:
    from services.verifier.settings import VerifierSettings
    from tools.bench.verifier import CANDIDATES, scorer_latency

    threads = load(VerifierSettings, {}).threads  # the service's default, as its bench runs it
    scorer = OnnxPairScorer(model_dir, model_id=model_dir.name, threads=threads, calibration=calibration)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    samples = np.array(scorer_latency(scorer, iterations)) * 1000
    used = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    return {
        "candidates": len(CANDIDATES),
        "threads": threads,
        "p50_ms": round(float(np.percentile(samples, 50)), 2),
        "p99_ms": round(float(np.percentile(samples, 99)), 2),
        "cpu_ms_per_call": round((used - cpu) * 1000 / (iterations + 5), 2),
        "iterations": iterations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("services/verifier/model"))
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--fp32-test", action="store_true", help="also run the test splits through fp32 (slow)")
    parser.add_argument("--limit", type=int, default=0, help="first N pairs of each set only (smoke runs)")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    started = time.time()

    cal_rows = calibration_rows(args.datasets, SEED)
    if args.limit:
        cal_rows = cal_rows[: args.limit] + cal_rows[-args.limit :]  # both QQP and STS-B dev
    cal_labels = np.array([r[2] for r in cal_rows])
    dev_logits, (a, b) = fit(args.model, cal_rows)
    print(f"calibration int8: a={a:.4f} b={b:.4f} on {len(cal_rows)} dev pairs", flush=True)
    variants = {"int8": args.model}
    if (args.model / "fp32" / "model.onnx").is_file():  # calibrated on its own logits; tested on request
        _, (a32, b32) = fit(args.model / "fp32", cal_rows)
        print(f"calibration fp32: a={a32:.4f} b={b32:.4f}", flush=True)
        if args.fp32_test:
            variants["fp32"] = args.model / "fp32"

    qqp_dev = np.array([r[3] == "qqp" for r in cal_rows])
    dev_p = sigmoid(a * dev_logits + b)
    operating = threshold_for_precision(dev_p[qqp_dev], cal_labels[qqp_dev], 0.95)
    metrics: dict = {"operating_threshold": operating, "calibration": {"a": a, "b": b}, "test": {}}
    metrics["calibration"]["dev_ece"] = calibrate.expected_calibration_error(dev_p, cal_labels)

    emb = embedder()
    for name in TEST_SETS:
        rows = read_split(args.datasets, name, "test")[: args.limit or None]
        labels = np.array([r[2] for r in rows])
        cos = cosine(emb, [r[0] for r in rows], [r[1] for r in rows])
        entry = {"cosine": report(cos, labels, 0.75)}
        for variant, folder in variants.items():
            p = load_calibration(folder)(logits(raw_scorer(folder), rows))
            entry[variant] = report(p, labels, 0.5)
            entry[variant]["ece"] = calibrate.expected_calibration_error(p, labels)
            if name == "qqp" and variant == "int8":  # at p >= 0.5 and at dev precision 0.95
                thresholds = (REFERENCE_THRESHOLD, operating)
                entry["prefilter"] = [prefilter_table(p, cos, labels, t) for t in thresholds]
            if name == "checklist" and variant == "int8":
                entry["per_test"] = per_test(p, cos, labels, checklist_tests(args.datasets, "test")[: len(rows)])
        metrics["test"][name] = entry
        print(f"{name}: int8 AUC {entry['int8']['auc']:.3f}  cosine AUC {entry['cosine']['auc']:.3f}", flush=True)
    metrics["gateway"] = {"min_similarity": GATEWAY.semantic_min_similarity, "k": GATEWAY.semantic_k,
                          "threshold": REFERENCE_THRESHOLD}  # fmt: skip
    qqp_test = read_split(args.datasets, "qqp", "test")[: args.limit or None]
    metrics["neighbours_qqp_test"] = neighbour_coverage(emb, qqp_test)

    calibration = load_calibration(args.model)
    scorer = OnnxPairScorer(args.model, model_id=args.model.name, calibration=calibration)
    metrics["traps"] = [
        {"a": t.a, "b": t.b, "expected": t.label, "kind": t.kind, "p": float(scorer.score(t.a, [t.b])[0])}
        for t in TRAPS
    ]
    metrics["latency"] = latency(args.model, calibration)
    metrics["eval_minutes"] = round((time.time() - started) / 60, 1)
    (args.model / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    model_card.write(args.model, metrics)
    print(json.dumps({k: metrics[k] for k in ("operating_threshold", "latency", "neighbours_qqp_test")}, indent=2))


def per_test(p: np.ndarray, cos: np.ndarray, labels: np.ndarray, tests: list[str]) -> list[dict]:
    """Accuracy per CheckList test at p >= 0.5 (and cosine's at its own best single threshold on the set)."""
    grid = np.linspace(0.5, 1.0, 101)
    cut = grid[int(np.argmax([((cos >= t) == (labels == 1)).mean() for t in grid]))]
    names = np.array(tests)
    out = []
    for test in sorted(set(tests)):
        m = names == test
        out.append({
            "test": test, "n": int(m.sum()), "positives": int(labels[m].sum()),
            "accuracy": float(((p[m] >= REFERENCE_THRESHOLD) == (labels[m] == 1)).mean()),
            "cosine_accuracy": float(((cos[m] >= cut) == (labels[m] == 1)).mean()), "cosine_threshold": float(cut),
        })  # fmt: skip
    return out


def prefilter_table(p: np.ndarray, cos: np.ndarray, labels: np.ndarray, threshold: float | None) -> dict:
    """Recall of verifier-alone vs prefilter+verifier at the operating threshold, per cosine floor."""
    if threshold is None:
        return {}
    positives = labels == 1
    alone = float(((p >= threshold) & positives).sum() / positives.sum())
    rows = []
    for floor in PREFILTERS:
        kept = (p >= threshold) & (cos >= floor)
        recall = float((kept & positives).sum() / positives.sum())
        precision = float((kept & positives).sum() / max(1, kept.sum()))
        kept_share = recall / alone if alone else 0.0
        rows.append({"min_similarity": floor, "recall": recall, "precision": precision, "kept": kept_share})
    return {
        "threshold": threshold,
        "verifier_recall": alone,
        "verifier_precision": float(((p >= threshold) & positives).sum() / max(1, (p >= threshold).sum())),
        "rows": rows,
        "cosine_auc": auc(cos, labels),
        "cosine_recall_at_p95": recall_at_precision(cos, labels, 0.95),
    }


if __name__ == "__main__":
    main()
