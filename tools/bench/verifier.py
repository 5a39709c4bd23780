"""Verifier figures: latency through the scorer and through gRPC, service RSS, and ranking
quality on labeled pairs (a sanity check of the pipeline, not of same-intent quality).

    .venv/bin/python -m tools.bench.verifier [--iterations 200] [--pairs 1000]

Model settings come from the same DEJA_VERIFIER_* variables as the service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from deja.clients import VerifierClient
from deja.settings import load
from deja.v1 import verifier_pb2
from services.verifier.main import SERVICE_NAME
from services.verifier.scorer import PairScorer, load_scorer
from services.verifier.settings import VerifierSettings
from tools.bench.memory import rss_mb
from tools.cluster import free_port, grpc_ready
from tools.eval.labeled import tsv_rows
from tools.eval.metrics import auc

# The shared evaluation data sits next to the checkout (see its README); DEJA_DATASETS overrides.
DATASETS = Path(os.environ.get("DEJA_DATASETS", Path(__file__).resolve().parents[3] / "shared" / "datasets"))
QUERY = "How do I center a div in CSS?"
CANDIDATES = [
    "How can I center a div horizontally and vertically?",
    "What is the best way to center an element with flexbox?",
    "How do I center text inside a button?",
    "How do I vertically align an image in a div?",
    "What is the capital of France?",
]


def percentiles(samples_s: list[float]) -> str:
    ms = np.array(samples_s) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms   p99 {np.percentile(ms, 99):6.2f} ms   (n={len(ms)})"


def scorer_latency(scorer: PairScorer, iterations: int, count: int = len(CANDIDATES)) -> list[float]:
    for _ in range(5):
        scorer.score(QUERY, CANDIDATES[:count])
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        scorer.score(QUERY, CANDIDATES[:count])
        samples.append(time.perf_counter() - started)
    return samples


async def grpc_latency(addr: str, iterations: int, count: int = len(CANDIDATES)) -> list[float]:
    client = VerifierClient(addr, timeout_s=5.0)
    candidates = [verifier_pb2.VerifyCandidate(entry_id=str(i), prompt=p) for i, p in enumerate(CANDIDATES[:count])]
    for _ in range(5):
        await client.verify(QUERY, candidates)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await client.verify(QUERY, candidates)
        samples.append(time.perf_counter() - started)
    await client.close()
    return samples


def service_figures(iterations: int) -> None:
    port = free_port()
    env = {**os.environ, "DEJA_VERIFIER_PORT": str(port), "DEJA_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "services", "serve", "verifier"], env=env, stdout=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        while not grpc_ready(f"127.0.0.1:{port}", SERVICE_NAME):
            if proc.poll() is not None or time.monotonic() - started > 60:
                raise RuntimeError("verifier service did not become ready")
            time.sleep(0.05)
        print(f"service ready in {time.monotonic() - started:.1f} s (process start, imports, model load)")
        idle = rss_mb(proc.pid)
        for count in (1, len(CANDIDATES)):
            samples = asyncio.run(grpc_latency(f"127.0.0.1:{port}", iterations, count))
            print(f"gRPC Verify, {count} candidate{'s' if count > 1 else ' '}:   {percentiles(samples)}")
        busy, peak = rss_mb(proc.pid), rss_mb(proc.pid, peak=True)
        print(f"service RSS: {idle:.0f} MB idle, {busy:.0f} MB after the run, peak {peak:.0f} MB (target <= 600 MB)")
    finally:
        proc.terminate()
        proc.wait(10)


def labeled_pairs(path: Path, n: int, seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    rows = tsv_rows(path)
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    return [(r["text_a"], r["text_b"]) for r in rows], np.array([int(r["label"]) for r in rows])


def quality(scorer: PairScorer, name: str, path: Path, n: int, seed: int) -> None:
    if not path.is_file():
        print(f"{name}: {path} not found, skipped")
        return
    pairs, labels = labeled_pairs(path, n, seed)
    started = time.perf_counter()
    scores = np.array([scorer.score(a, [b])[0] for a, b in pairs])
    elapsed = time.perf_counter() - started
    line = f"{name}: {len(pairs)} pairs ({labels.mean():.0%} positive), rank AUC {auc(scores, labels):.3f}"
    for threshold in (0.5, 0.9):
        accepted = scores >= threshold
        precision = labels[accepted].mean() if accepted.any() else float("nan")
        recall = accepted[labels == 1].mean()
        line += f"; @{threshold}: precision {precision:.2f} recall {recall:.2f}"
    print(f"{line}  [{elapsed / len(pairs) * 1000:.1f} ms/pair]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200, help="timed Verify calls per latency row")
    parser.add_argument("--pairs", type=int, default=1000, help="labeled pairs sampled per dataset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-service", action="store_true", help="no gRPC latency / RSS (no subprocess)")
    parser.add_argument("--paws", action="store_true", help="also PAWS test (word-swap pairs)")
    args = parser.parse_args()

    settings = load(VerifierSettings)
    started = time.perf_counter()
    scorer = load_scorer(settings)
    info = scorer.info
    loaded_s = time.perf_counter() - started
    print(f"model {info.model_id} @ {info.model_version} ({info.backend}), loaded in {loaded_s:.2f} s")
    print(
        f"threads {settings.threads}, max_length {settings.max_length}, "
        f"candidates batched in one call: {getattr(scorer, 'batches_candidates', '?')}; load average {os.getloadavg()}"
    )
    # The gateway verifies the nearest candidate alone first (DEJA_VERIFY_NEAREST_FIRST): a hit whose
    # nearest neighbour clears costs the 1-candidate row; anything else costs both rows.
    for count in (1, len(CANDIDATES)):
        samples = scorer_latency(scorer, args.iterations, count)
        print(f"scorer, {count} candidate{'s' if count > 1 else ' '}:        {percentiles(samples)}")
    if not args.skip_service:
        service_figures(args.iterations)
    asc = float(scorer.score("sort a list ascending", ["sort a list descending"])[0])
    print(f"'sort a list ascending' vs 'sort a list descending': p = {asc:.4f} (a same-intent verifier needs ~0)")
    quality(scorer, "QQP test", DATASETS / "qqp" / "test.tsv.gz", args.pairs, args.seed)
    if args.paws:
        quality(scorer, "PAWS test", DATASETS / "paws" / "test.tsv.gz", args.pairs, args.seed)


if __name__ == "__main__":
    main()
