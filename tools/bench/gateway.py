"""`deja bench`: latency and throughput of the exact-hit path, on a throwaway local cluster.

The cluster runs the mock provider with 0 ms latency and no access log, so the figures are
the cost of Deja itself. Reference rows (bare Redis, a bare store Get, the bare mock provider)
show where the time of a gateway hit goes.

HTTP is measured with a minimal raw HTTP/1.1 keep-alive client: a general-purpose client such
as httpx costs more per request than the gateway does on a small machine, and would hide it.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import httpx
import orjson
import redis
import uvloop

from deja.clients import EmbedderClient, StoreClient
from deja.v1 import common_pb2
from services.gateway.api_format import entry_key
from services.gateway.identity import tenant_of
from services.gateway.openai.request import parse_chat_request
from tools.bench.exposition import samples
from tools.bench.memory import rss_mb
from tools.cluster import Cluster

API_KEY = "bench-key"
CHAT_PATH = "/v1/chat/completions"
BODY = orjson.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What does an exact cache hit cost?"}]}
)
WARMUP = 50  # untimed requests first, so lazy imports and first-call setup stay out of the figures
CONNECTIONS = (1, 16, 64)
TARGETS = "exact hit p50 <= 2 ms; >= 1,500 req/s with one gateway worker; RSS <= 150 MB for gateway and store"


# -- a minimal HTTP/1.1 keep-alive client -------------------------------------------------


def post_bytes(port: int, path: str, body: bytes, key: str = API_KEY) -> bytes:
    """One complete POST request, built once and sent as is on every call."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HttpConnection:
    """One keep-alive connection; responses must carry Content-Length (no chunked bodies)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> tuple[int, bytes, bytes]:
        """(status, lower-cased head, body)."""
        self.writer.write(request)  # small request: the transport buffers it, no drain needed
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        end = head.index(b"\r\n", start + 2)
        body = await self.reader.readexactly(int(head[start + 17 : end]))
        return int(head[9:12]), head, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# -- statistics -----------------------------------------------------------------------------


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    mean_ms: float


def summarize(samples_s: list[float]) -> Latency:
    ordered = sorted(samples_s)

    def rank_ms(q: float) -> float:  # nearest rank: a value that was actually observed
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return Latency(rank_ms(0.50), rank_ms(0.99), statistics.fmean(ordered) * 1000)


async def time_async(call: Callable[[], Awaitable[object]], requests: int) -> Latency:
    for _ in range(WARMUP):
        await call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return summarize(samples)


def time_sync(call: Callable[[], object], requests: int) -> Latency:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return summarize(samples)


# -- the measurements -----------------------------------------------------------------------


def redis_get_latency(port: int, requests: int) -> Latency:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        client.set("deja-bench:raw", os.urandom(512).hex())  # ~1 KB, about the size of a cached completion
        return time_sync(lambda: client.get("deja-bench:raw"), requests)
    finally:
        client.close()


async def store_get_latency(addr: str, requests: int) -> Latency:
    # The same scope and key the gateway derived for BODY, so this reads the seeded entry.
    scope = common_pb2.Scope(tenant=tenant_of(API_KEY))
    key = entry_key(scope.tenant, parse_chat_request(BODY).cache_key())
    store = StoreClient(addr, timeout_s=2.0)
    try:
        if await store.get(scope, key) is None:
            raise SystemExit("deja bench: the store has no entry for the seeded request (tenant/key mismatch?)")
        return await time_async(lambda: store.get(scope, key), requests)
    finally:
        await store.close()


async def http_latency(port: int, request: bytes, requests: int) -> Latency:
    conn = await HttpConnection.open(port)

    async def call() -> None:
        status, _, body = await conn.send(request)
        if status != 200:
            raise RuntimeError(f"HTTP {status} on port {port}: {body[:300]!r}")

    try:
        return await time_async(call, requests)
    finally:
        await conn.close()


async def seed_exact_entry(port: int) -> None:
    """One miss stores the answer in the background; the next identical request must be a hit."""
    conn = await HttpConnection.open(port)
    try:
        request = post_bytes(port, CHAT_PATH, BODY)
        status, _, body = await conn.send(request)
        if status != 200:
            raise SystemExit(f"deja bench: seeding request failed with HTTP {status}: {body[:300]!r}")
        await asyncio.sleep(0.3)  # the cache write runs after the response
        status, head, _ = await conn.send(request)
        if status != 200 or b"\r\nx-deja-cache: hit-exact\r\n" not in head:
            raise SystemExit(f"deja bench: expected an exact hit after seeding, got HTTP {status}:\n{head.decode()}")
    finally:
        await conn.close()


async def sequential_rows(cluster: Cluster, requests: int) -> list[tuple[str, Latency]]:
    return [
        ("store gRPC Get", await store_get_latency(cluster.store_addr, requests)),
        (
            "mock upstream direct (0 ms latency)",
            await http_latency(cluster.mock_port, post_bytes(cluster.mock_port, CHAT_PATH, BODY), requests),
        ),
        (
            "gateway exact hit",
            await http_latency(cluster.gateway_port, post_bytes(cluster.gateway_port, CHAT_PATH, BODY), requests),
        ),
    ]


# -- throughput: runs in a spawned process, away from the parent's log-pump threads ---------


@dataclass
class Throughput:
    connections: int
    done: int
    errors: int
    elapsed_s: float
    latency: Latency

    @property
    def per_second(self) -> float:
        return self.done / self.elapsed_s


async def _load(port: int, connections: int, seconds: float) -> Throughput:
    request = post_bytes(port, CHAT_PATH, BODY)
    conns = [await HttpConnection.open(port) for _ in range(connections)]
    for conn in conns:  # warm every connection before the clock starts
        await conn.send(request)
    samples: list[float] = []
    errors = 0

    async def loop(conn: HttpConnection, deadline: float) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, _, _ = await conn.send(request)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                conn = await HttpConnection.open(port)  # a dropped connection: count it, carry on
                continue
            if status == 200:
                samples.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(conn, started + seconds) for conn in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return Throughput(connections, len(samples), errors, elapsed, summarize(samples))


def load_worker(port: int, connections: int, seconds: float) -> Throughput:
    return uvloop.run(_load(port, connections, seconds))


# -- the semantic tier ----------------------------------------------------------------------

SEMANTIC_SEED = "How do I center a div horizontally with CSS?"
SEMANTIC_PARAPHRASE = "How can I horizontally center a div using CSS?"
WORDS = (
    "python rust kafka postgres docker kubernetes react css regex git linux redis numpy pandas flask django "
    "deploy migrate index parse sort merge debug profile cache stream encrypt compress schedule retry"
).split()


def chat_body(question: str) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]})


async def semantic_rows(cluster: Cluster, requests: int) -> list[tuple[str, Latency]]:
    """Semantic-hit latency, and what a miss pays before it is forwarded (cache lookups)."""
    port = cluster.gateway_port
    conn = await HttpConnection.open(port)
    try:
        # A new tenant's first match goes to the judge (the mock's, told these two ask the same thing);
        # its "yes" approves the pairing, so from then on the paraphrase is served unasked.
        truth = {"truth": {SEMANTIC_SEED: "center-div", SEMANTIC_PARAPHRASE: "center-div"}}
        async with httpx.AsyncClient(timeout=5) as mock:
            (await mock.post(f"{cluster.mock_url}/mock/judge", json=truth)).raise_for_status()
        seed = post_bytes(port, CHAT_PATH, chat_body(SEMANTIC_SEED))
        await conn.send(seed)
        await asyncio.sleep(1.0)  # stored, then indexed, after the response
        paraphrase = post_bytes(port, CHAT_PATH, chat_body(SEMANTIC_PARAPHRASE))
        _, head, _ = await conn.send(paraphrase)
        if b"\r\nx-deja-cache: hit-judged\r\n" not in head:
            raise SystemExit(f"deja bench: expected a judged hit for the paraphrase, got:\n{head.decode()}")
        _, head, _ = await conn.send(paraphrase)
        if b"\r\nx-deja-cache: hit-semantic\r\n" not in head:
            raise SystemExit(f"deja bench: expected a semantic hit for the paraphrase, got:\n{head.decode()}")
        # A semantic hit writes no exact entry, so the same paraphrase stays a semantic hit.
        hit = await http_latency(port, paraphrase, requests)
        # A new connection: this one idled while the hits were timed, past uvicorn's 5 s keep-alive.
        await conn.close()
        conn = await HttpConnection.open(port)
        # Fresh questions (random bags of tech words): each is a miss unless the relevance-model
        # verifier lets a near-duplicate bag through; those are counted, not timed.
        rng = random.Random(7)
        stages_before = await tier_seconds(cluster.gateway_url)
        miss_samples: list[float] = []
        judged_samples: list[float] = []  # misses the judge was asked about first (it said no)
        false_hits = 0
        for i in range(WARMUP + requests):
            question = " ".join(rng.choices(WORDS, k=8)) + "?"
            started = time.perf_counter()
            status, head, _ = await conn.send(post_bytes(port, CHAT_PATH, chat_body(question)))
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"HTTP {status} for a fresh question")
            if b"x-deja-cache: miss" in head:
                if i >= WARMUP:
                    (judged_samples if b"x-deja-judge: " in head else miss_samples).append(elapsed)
            else:
                false_hits += 1
        misses = summarize(miss_samples)
        stages = await tier_seconds(cluster.gateway_url)
    finally:
        await conn.close()
    total = WARMUP + requests
    steps = [  # where the fresh questions' time went, step by step (means: the histogram keeps no samples)
        (f"  step {tier}: {calls} calls, mean", Latency(mean_ms, mean_ms, mean_ms))
        for tier, (mean_ms, calls) in step_means(stages_before, stages).items()
    ]
    label = f"gateway miss, no judge call (mock at 0 ms; {false_hits} of {total} were hits)"
    head = [("gateway semantic hit", hit), (label, misses)]
    if judged_samples:
        label = f"gateway miss after a judged no ({len(judged_samples)} of {total}; judge at 0 ms)"
        head.append((label, summarize(judged_samples)))
    return head + steps


async def tier_seconds(gateway_url: str) -> dict[str, tuple[float, float]]:
    """{tier: (seconds, calls)} so far, from the gateway's deja_tier_duration_seconds histogram."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{gateway_url}/metrics")).text
    found: dict[str, list[float]] = {}
    for sample in samples(text, "deja_tier_duration_seconds_sum", "deja_tier_duration_seconds_count"):
        slot = 0 if sample.name.endswith("_sum") else 1
        found.setdefault(sample.labels["tier"], [0.0, 0.0])[slot] = sample.value
    return {tier: (pair[0], pair[1]) for tier, pair in found.items()}


def step_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict:
    """{step: (mean ms per call, calls)} between two `tier_seconds` snapshots, for the steps called in
    between: where a request's latency went (a model step includes its gRPC hop and any queueing)."""
    means = {}
    for step, (seconds, calls) in after.items():
        seconds_before, calls_before = before.get(step, (0.0, 0.0))
        if calls > calls_before:
            made = calls - calls_before
            means[step] = (1000 * (seconds - seconds_before) / made, int(made))
    return means


async def embedder_throughput(addr: str, seconds: float, batch: int = 32, concurrency: int = 4) -> float:
    """Texts per second through the embedder service, several batched calls in flight."""
    client = EmbedderClient(addr, timeout_s=10.0)
    rng = random.Random(3)
    done = 0

    async def worker(deadline: float) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            texts = [" ".join(rng.choices(WORDS, k=rng.randint(5, 14))) for _ in range(batch)]
            await client.embed(texts)
            done += len(texts)

    try:
        await client.embed(["warm up"])
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)
    finally:
        await client.close()


# -- the report -----------------------------------------------------------------------------


def print_report(
    requests: int, seconds: float, rows: list[tuple[str, Latency]], runs: list[Throughput], rss: dict[str, float]
) -> None:
    print(f"\nDeja bench: exact-hit path   (os.cpu_count() = {os.cpu_count()})")
    print("note: the load generator shares the machine's cores with the cluster (Redis, store, gateway, mock)\n")
    title = f"sequential latency, 1 connection, {requests} requests"
    print(f"{title:<44}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, lat in rows:
        print(f"  {name:<42}{lat.p50_ms:>9.3f}{lat.p99_ms:>9.3f}{lat.mean_ms:>9.3f}")
    title = f"gateway exact hit throughput, {seconds:g} s per run"
    print(f"\n{title:<44}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>9}")
    for run in runs:
        lat = run.latency
        print(
            f"  {f'{run.connections} connection(s)':<42}{run.per_second:>9,.0f}"
            f"{lat.p50_ms:>9.3f}{lat.p99_ms:>9.3f}{run.errors:>9}"
        )
    print("\nresident memory after load (RSS)")
    for name, mb in rss.items():
        print(f"  {name:<42}{mb:>9.1f} MB")
    print(f"\ntargets: {TARGETS}")


def _cluster_lines_only(name: str, line: str) -> None:
    if name == "cluster":
        print(f"{name:<14}| {line}", flush=True)


def run_bench(seconds: float, requests: int, access_log: bool = False) -> None:
    cluster = Cluster.on_free_ports(
        state_dir=Path(tempfile.mkdtemp(prefix="deja-bench-")),
        upstream="mock",
        mock_latency_ms=0,
        persist=False,
        sink=_cluster_lines_only,
        # Off by default: the figures are the cache path itself; --access-log shows what logging adds.
        extra_env={"DEJA_ACCESS_LOG": "true" if access_log else "false"},
    )
    cluster.start()
    try:
        uvloop.run(seed_exact_entry(cluster.gateway_port))
        rows = [("redis GET (bare)", redis_get_latency(cluster.redis_port, requests))]
        rows += uvloop.run(sequential_rows(cluster, requests))
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            runs = [pool.submit(load_worker, cluster.gateway_port, n, seconds).result() for n in CONNECTIONS]
        semantic = uvloop.run(semantic_rows(cluster, max(50, requests // 10)))
        texts_per_s = uvloop.run(embedder_throughput(f"127.0.0.1:{cluster.embedder_port}", seconds))
        services = ("gateway", "store", "embedder", "semantic-index", "verifier")
        rss = {name: rss_mb(cluster.procs[name].popen.pid) for name in services}
    finally:
        cluster.stop()
        shutil.rmtree(cluster.state_dir, ignore_errors=True)
    print_report(requests, seconds, rows, runs, rss)
    print("\nsemantic tier (1 connection)                   p50 ms   p99 ms  mean ms")
    for name, lat in semantic:
        print(f"  {name:<42}{lat.p50_ms:>9.3f}{lat.p99_ms:>9.3f}{lat.mean_ms:>9.3f}")
    print(f"  embedder throughput (32-text calls, 4 in flight): {texts_per_s:,.0f} texts/s")
    print("targets: semantic hit p50 <= 20 ms; miss overhead p50 <= 15 ms; embedder >= 400 texts/s;")
    print("         RSS embedder and verifier <= 600 MB each, semantic index <= 1.5 GB at 100k entries")
    print(f"gateway access log: {'on' if access_log else 'off'}")
