"""Embedder figures: single-text latency (backend and gRPC), batched throughput, service RSS.

    .venv/bin/python -m tools.bench.embedder [--seconds 5] [--threads 0]

Texts are real questions (QQP, from ../shared/datasets when present; else generated ones of the
same length). The service runs as its own process (`python -m services.embedder.main`) with the
embedding cache off, so every call is a model run; its RSS is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import numpy as np

from deja.clients import EmbedderClient
from deja.settings import load
from services.embedder.backends import create_backend
from services.embedder.base import REPO
from services.embedder.settings import EmbedderSettings
from tools.bench.memory import rss_mb
from tools.cluster import free_port
from tools.eval.labeled import cluster_records

QQP = REPO.parent / "shared/datasets/qqp/clusters.jsonl.gz"


def questions(n: int = 2000) -> list[str]:
    if QQP.is_file():
        return [record["question"] for _, record in zip(range(n), cluster_records(QQP), strict=False)]
    topics = ["a list", "a dict", "a div", "a string", "a file", "a thread", "a socket", "a date"]
    return [f"How do I sort {topics[i % 8]} in Python without copying it, number {i}?" for i in range(n)]


def p50_ms(samples: list[float]) -> float:
    return float(np.median(samples) * 1000)


def bench_backend(texts: list[str], seconds: float, threads: int) -> dict[str, float]:
    # The environment picks the backend (DEJA_EMBEDDER_BACKEND=mlx|triton ...); threads are the bench's.
    settings = load(EmbedderSettings, {**os.environ, "DEJA_EMBEDDER_THREADS": str(threads)})
    backend = create_backend(settings)
    backend.embed(texts[:64])
    samples = []
    for text in texts[:300]:
        started = time.perf_counter()
        backend.embed([text])
        samples.append(time.perf_counter() - started)
    done, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        chunk = texts[done % len(texts) :][:64]
        backend.embed(chunk)
        done += len(chunk)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "backend_p50_ms": p50_ms(samples),
        "backend_batch64_texts_s": done / wall,
        # texts per CPU-second: what each core yields, whatever else shares the machine (threads don't spin)
        "backend_batch64_texts_per_cpu_s": done / cpu,
        "backend_cores_used": cpu / wall,
    }


async def bench_grpc(texts: list[str], seconds: float, threads: int, window_ms: float) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "DEJA_EMBEDDER_PORT": str(port),
        "DEJA_EMBEDDER_THREADS": str(threads),
        "DEJA_EMBEDDER_BATCH_WINDOW_MS": str(window_ms),
        "DEJA_EMBEDDING_CACHE_URL": "",
        "DEJA_LOG_LEVEL": "warning",
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.embedder.main", env=env, cwd=REPO)
    client = EmbedderClient(f"127.0.0.1:{port}", timeout_s=10.0)
    try:
        deadline = time.monotonic() + 30
        while not await client.serving():
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("embedder service did not start")
            await asyncio.sleep(0.05)
        loaded_rss = rss_mb(proc.pid)
        for text in texts[:20]:
            await client.embed([text])
        samples = []
        for text in texts[:300]:
            started = time.perf_counter()
            await client.embed([text])
            samples.append(time.perf_counter() - started)

        # 32 callers each sending one text at a time: the micro-batcher coalesces them
        done = 0
        stop_at = time.perf_counter() + seconds

        async def caller(offset: int) -> None:
            nonlocal done
            i = offset
            while time.perf_counter() < stop_at:
                await client.embed([texts[i % len(texts)]])
                done += 1
                i += 32

        started = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(32)))
        concurrent = done / (time.perf_counter() - started)
        rss, peak = rss_mb(proc.pid), rss_mb(proc.pid, peak=True)
        return {
            "grpc_p50_ms": p50_ms(samples),
            "grpc_32_callers_texts_s": concurrent,
            "service_rss_loaded_mb": loaded_rss,
            "service_rss_after_load_test_mb": rss,
            "service_rss_peak_mb": peak,
        }
    finally:
        await client.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    parser.add_argument("--window-ms", type=float, default=2.0, help="the service's micro-batch window")
    args = parser.parse_args()
    texts = questions()
    print(f"texts: {len(texts)} {'QQP questions' if QQP.is_file() else 'generated'}; cores: {os.cpu_count()}")
    figures = bench_backend(texts, args.seconds, args.threads)
    figures.update(asyncio.run(bench_grpc(texts, args.seconds, args.threads, args.window_ms)))
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:8.1f}")


if __name__ == "__main__":
    main()
