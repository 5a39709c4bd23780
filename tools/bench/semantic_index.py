"""Measure the edge backend: upsert throughput, filtered top-k search latency, memory.

    .venv/bin/python -m tools.bench.semantic_index [--sizes 10000,100000] [--dim 384] [--queries 1000]

Random unit vectors spread over tenants x contexts (one scope is 1/scopes of the index); each
search asks for the top 5 of one scope, as the gateway does. Latency is measured in process (the
backend's async API, engine calls on its thread pool) and, at the largest size, through gRPC
against a `deja serve semantic-index` process, whose resident memory is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deja.clients import SemanticIndexClient
from deja.v1 import common_pb2
from services.semantic_index.backend import IndexPoint, SearchQuery, now_ms
from services.semantic_index.edge_backend import EdgeBackend
from tools.bench.memory import rss_mb
from tools.cluster import free_port, grpc_ready

VERSION = "bench"
PURGE_INTERVAL_S = 1.0


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.array(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


class Data:
    def __init__(self, dim: int, tenants: int, contexts: int, seed: int = 0) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(seed)
        self.tenants = [f"{i:032x}" for i in range(tenants)]
        self.contexts = [bytes([i]) * 32 for i in range(contexts)]
        self.scopes = [(t, c) for t in self.tenants for c in self.contexts]
        self.expires = now_ms() + 86_400_000

    def vectors(self, n: int) -> np.ndarray:
        v = self.rng.standard_normal((n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def point(self, i: int, vector: np.ndarray) -> IndexPoint:
        t, c = self.scopes[i % len(self.scopes)]
        return IndexPoint(
            tenant=t, namespace="", context_hash=c, vector=vector, prompt=f"benchmark prompt number {i}",
            entry_id=f"{i:016x}", expires_at_ms=self.expires, model_version=VERSION,
        )  # fmt: skip


async def fill(backend: EdgeBackend, data: Data, start: int, stop: int, in_flight: int) -> float:
    """Upsert points [start, stop), `in_flight` at a time, one point per call (as the service does)."""
    began = time.perf_counter()
    chunk = 4096
    for base in range(start, stop, chunk):
        vectors = data.vectors(min(chunk, stop - base))
        queue = iter(range(len(vectors)))

        async def worker(vectors=vectors, base=base, queue=queue) -> None:
            for j in queue:
                await backend.upsert(data.point(base + j, vectors[j]))

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return (stop - start) / (time.perf_counter() - began)


def queries(data: Data, n: int) -> list[tuple[str, bytes, np.ndarray]]:
    """n queries, all in the first scope: one tenant/context among all the others."""
    tenant, context = data.scopes[0]
    return [(tenant, context, v) for v in data.vectors(n)]


async def search_latency(backend: EdgeBackend, qs) -> tuple[tuple[float, float], int]:
    samples, found = [], 0
    for tenant, context, vector in qs:
        q = SearchQuery(
            tenant=tenant, namespace="", context_hash=context, vector=vector, k=5, min_similarity=-1.0,
            model_version=VERSION,
        )  # fmt: skip
        began = time.perf_counter()
        hits = await backend.search(q)
        samples.append(time.perf_counter() - began)
        found += len(hits)
    return percentiles(samples), found


async def grpc_round(data_dir: Path, data: Data, qs) -> dict:
    port = free_port()
    env = {**os.environ, "DEJA_SEMANTIC_PORT": str(port), "DEJA_SEMANTIC_DATA_DIR": str(data_dir)}
    env.update(DEJA_LOG_LEVEL="warning", DEJA_SEMANTIC_PURGE_INTERVAL_S=str(PURGE_INTERVAL_S))
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services", "serve", "semantic-index", env=env)
    try:
        while not await asyncio.to_thread(grpc_ready, f"127.0.0.1:{port}"):
            if proc.returncode is not None:
                raise RuntimeError(f"semantic-index exited with {proc.returncode}")
            await asyncio.sleep(0.05)
        start_s = time.perf_counter() - began
        idle = rss_mb(proc.pid)
        client = SemanticIndexClient(f"127.0.0.1:{port}", timeout_s=5.0)
        samples = []
        for tenant, context, vector in qs:
            scope = common_pb2.Scope(tenant=tenant)
            t0 = time.perf_counter()
            await client.search(scope, context, vector.tolist(), k=5, min_similarity=-1.0, model_version=VERSION)
            samples.append(time.perf_counter() - t0)
        after = rss_mb(proc.pid)
        # Drop 30% of the points; the next purge round vacuums them (a segment rewrite), the
        # most memory the service needs at this size.
        dropped = 0
        for tenant in data.tenants[-3:]:
            dropped += await client.drop_tenant(tenant)
        await asyncio.sleep(3 * PURGE_INTERVAL_S + 5)
        await client.close()
        return {
            "start_s": start_s, "rss_idle": idle, "rss_after": after, "latency": percentiles(samples),
            "dropped": dropped, "rss_peak": rss_mb(proc.pid, peak=True),
        }  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


async def run(args: argparse.Namespace) -> None:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    data = Data(args.dim, args.tenants, args.contexts)
    scope_share = 1 / len(data.scopes)
    with tempfile.TemporaryDirectory(prefix="deja-semantic-bench-", dir=args.dir) as tmp:
        data_dir = Path(tmp)
        backend = EdgeBackend.open(data_dir)
        rows = []
        sequential = await fill(backend, data, 0, min(2000, sizes[0]), in_flight=1)
        done = min(2000, sizes[0])
        print(f"upsert, 1 in flight: {sequential:,.0f} points/s", flush=True)
        concurrent = []
        for size in sizes:
            if size > done:
                concurrent.append(await fill(backend, data, done, size, in_flight=args.in_flight))
                done = size
                print(f"{size:,} points: upsert, {args.in_flight} in flight: {concurrent[-1]:,.0f}/s", flush=True)
            await search_latency(backend, queries(data, 50))  # warm-up
            (p50, p99), found = await search_latency(backend, queries(data, args.queries))
            assert found == 5 * args.queries, "every query must find 5 hits in its scope"
            rows.append((size, int(size * scope_share), p50, p99, rss_mb()))
            print(f"  search top-5: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
        await backend.close()
        via_grpc = None if args.no_grpc else await grpc_round(data_dir, data, queries(data, args.queries))

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print()
    print(f"edge backend, {args.dim}-d, {len(data.scopes)} scopes ({args.tenants} tenants x {args.contexts} contexts),")
    print(f"{args.queries} filtered top-5 searches per row, {os.cpu_count()} CPUs, load average {load}")
    print()
    print("| points | points in the searched scope | search p50 | search p99 | bench process RSS |")
    print("| --- | --- | --- | --- | --- |")
    for size, in_scope, p50, p99, rss in rows:
        print(f"| {size:,} | {in_scope:,} | {p50:.2f} ms | {p99:.2f} ms | {rss:,.0f} MB |")
    print()
    print(f"upsert throughput, one point per call: {sequential:,.0f}/s sequential, "
          f"{np.mean(concurrent or [float('nan')]):,.0f}/s with {args.in_flight} in flight")  # fmt: skip
    if via_grpc:
        p50, p99 = via_grpc["latency"]
        print(
            f"through gRPC at {sizes[-1]:,} points (`deja serve semantic-index`, "
            f"ready {via_grpc['start_s']:.1f} s after start): "
            f"search p50 {p50:.2f} ms, p99 {p99:.2f} ms; service RSS {via_grpc['rss_idle']:,.0f} MB idle, "
            f"{via_grpc['rss_after']:,.0f} MB after the searches, peak {via_grpc['rss_peak']:,.0f} MB "
            f"including the vacuum after dropping {via_grpc['dropped']:,} points"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="index sizes to measure at (comma-separated)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--contexts", type=int, default=5)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=16, help="concurrent upserts while filling")
    parser.add_argument("--dir", default=None, help="where the temporary index lives (default: the system tmp)")
    parser.add_argument("--no-grpc", action="store_true", help="skip the gRPC round against a service process")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
