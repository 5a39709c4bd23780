"""Session memory figures: archive compression on conversation text, and append/read latency.

    python -m tools.bench.sessions [--datasets ../shared/datasets] [--requests 2000]

Compression runs on two synthetic corpora built from real text (no paraphrase pairs, so no
near-duplicates flatter zstd): "prose" (user turns are Quora questions, one per same-intent
cluster; answers are 2-6 sentences from MRPC/STS-B) and "coding" (the same questions; answers
are a sentence plus 5-40 lines of real code from the Python standard library). The ratio is
the archive file (header + zstd body, without the turn vectors, which are reported apart)
over the UTF-8 size of the message contents alone: the figure lix-open-cache quotes for its
pure-Python Huffman coder is about 54%.

Latency is measured over gRPC against a real store process and Redis (a throwaway local
cluster), one call at a time, and through the gateway for recall's cost on the chat path.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from deja.clients.sessions import SessionClient
from deja.v1 import sessions_pb2
from services.store.sessions.archive import Archive, Archived, Header
from services.store.sessions.records import Message
from tools.cluster import Cluster
from tools.eval.labeled import cluster_records, tsv_rows

SESSION_SIZES = (20, 100, 1000)  # messages
LEVELS = (3, 9, 19)
DIMENSION = 384


# -- corpora --------------------------------------------------------------------------------


def _column(path: Path, column: str = "text_a") -> list[str]:
    return [row[column] for row in tsv_rows(path)]


def _questions(datasets: Path) -> list[str]:
    seen, out = set(), []
    for row in cluster_records(datasets / "qqp" / "clusters.jsonl.gz"):
        if row["cluster_id"] not in seen:  # one question per same-intent cluster
            seen.add(row["cluster_id"])
            out.append(row["question"])
    return out


def _code_snippets(rng: random.Random, count: int) -> list[str]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    lines_of = [p.read_text(errors="replace").splitlines() for p in files]
    lines_of = [lines for lines in lines_of if len(lines) > 60]
    snippets = []
    for _ in range(count):
        lines = rng.choice(lines_of)
        start, size = rng.randrange(len(lines) - 45), rng.randint(5, 40)
        snippets.append("\n".join(lines[start : start + size]))
    return snippets


def conversations(datasets: Path, kind: str, size: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    questions = _questions(datasets)
    sentences = _column(datasets / "mrpc" / "train.tsv.gz") + _column(datasets / "stsb" / "train.tsv.gz")
    code = _code_snippets(rng, size) if kind == "coding" else []
    out = []
    for i in range(size):
        if i % 2 == 0:
            out.append(rng.choice(questions))
        elif kind == "prose":
            out.append(" ".join(rng.sample(sentences, rng.randint(2, 6))))
        else:
            out.append(f"{rng.choice(sentences)}\n\n```python\n{code[i]}\n```")
    return out


# -- compression ------------------------------------------------------------------------------


def compression_rows(datasets: Path) -> list[str]:
    rows = ["| corpus | messages | content | archive file (no vectors) | ratio | zstd level | write |",
            "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("prose", "coding"):
            for size in SESSION_SIZES:
                texts = conversations(datasets, kind, size)
                content = sum(len(t.encode()) for t in texts)
                messages = [
                    Message(i + 1, "user" if i % 2 == 0 else "assistant", t, 1_795_000_000_000 + i)
                    for i, t in enumerate(texts)
                ]
                for level in LEVELS:
                    archive = Archive(Path(tmp), level=level)
                    header = Header("bench", f"{kind}-{size}", 0, 0, 0, 0)
                    archived = Archived(header, messages, np.zeros((size, 0), dtype=np.float16))
                    started = time.perf_counter()
                    archive.write("k", archived)
                    ms = (time.perf_counter() - started) * 1000
                    stored = archive.path("bench", "k").stat().st_size
                    rows.append(f"| {kind} | {size} | {content / 1024:.1f} KiB | {stored / 1024:.1f} KiB | "
                                f"{100 * stored / content:.1f}% | {level} | {ms:.1f} ms |")  # fmt: skip
    vector_bytes = DIMENSION * 2
    rows.append(f"\nTurn vectors: {vector_bytes} bytes per message (float16 x {DIMENSION}), stored uncompressed "
                "after the body.")  # fmt: skip
    return rows


# -- latency ----------------------------------------------------------------------------------


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms"


async def _timed(n: int, call) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        out.append(time.perf_counter() - started)
    return out


async def grpc_rows(cluster: Cluster, texts: list[str], requests: int) -> list[str]:
    client = SessionClient(cluster.store_addr, timeout_s=10)
    tenant = uuid.uuid4().hex
    rows = []

    def ref(name: str) -> sessions_pb2.SessionRef:
        return sessions_pb2.SessionRef(tenant=tenant, session_id=name)

    def message(i: int) -> sessions_pb2.SessionMessage:
        return sessions_pb2.SessionMessage(role="user" if i % 2 == 0 else "assistant", content=texts[i % len(texts)])

    for i in range(50):  # warm-up: connections, scripts loaded, first archive file
        await client.append(ref("warm"), [message(i)])
    # Appends to 100 sessions round-robin, so windows fill, spill and archive as in real traffic.
    samples = await _timed(requests, lambda i: client.append(ref(f"s{i % 100}"), [message(i)]))
    rows.append(f"| Append (1 message; window 20, spills in the background) | {_ms(samples)} |")
    samples = await _timed(requests, lambda i: client.recent(ref(f"s{i % 100}"), 10))
    rows.append(f"| Recent n=10 (hot window only) | {_ms(samples)} |")
    for size in (200, 2000):
        name = f"long{size}"
        for start in range(0, size, 50):
            await client.append(ref(name), [message(i) for i in range(start, start + 50)])
        await asyncio.sleep(1.0)  # let the background spills land
        samples = await _timed(max(50, requests // 20), lambda i, name=name: client.get(ref(name)))
        rows.append(f"| Get, whole history of {size} messages (archive + hot) | {_ms(samples)} |")
    samples = await _timed(max(50, requests // 20), lambda i: client.recent(ref("long2000"), 40))
    rows.append(f"| Recent n=40 (reads past the window into the archive) | {_ms(samples)} |")
    await client.close()
    return rows


def recall_rows(cluster: Cluster, requests: int) -> list[str]:
    rows = []
    with httpx.Client(base_url=f"{cluster.gateway_url}/v1", headers={"Authorization": "Bearer bench"}) as http:

        def chat(i: int, headers: dict[str, str]) -> float:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {uuid.uuid4().hex}"}]}
            started = time.perf_counter()
            assert http.post("/chat/completions", json=body, headers=headers).status_code == 200
            return time.perf_counter() - started

        for _ in range(20):
            chat(0, {})
        recall = {"X-Session-ID": "bench-recall", "X-Deja-Memory": "recall"}
        plain, recorded, recalled = [], [], []
        for i in range(max(100, requests // 10)):  # interleaved, so load from elsewhere hits all three alike
            plain.append(chat(i, {}))
            recorded.append(chat(i, {"X-Session-ID": "bench-recorded"}))
            recalled.append(chat(i, recall))
    rows.append(f"| chat miss, no session (mock provider at 0 ms) | {_ms(plain)} |")
    rows.append(f"| chat miss with X-Session-ID (recorded after the response) | {_ms(recorded)} |")
    rows.append(f"| chat miss with X-Deja-Memory: recall (20 turns put in front) | {_ms(recalled)} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="../shared/datasets")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    datasets = Path(args.datasets)

    print("## Archive compression (content bytes -> file bytes without vectors)\n")
    print("\n".join(compression_rows(datasets)))

    texts = conversations(datasets, "prose", 400, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster.on_free_ports(
            state_dir=Path(tmp), upstream="mock", mock_latency_ms=0, semantic=False, persist=False,
            extra_env={"DEJA_ACCESS_LOG": "false"}, sink=lambda name, line: None,
        )  # fmt: skip
        with cluster:
            print("\n## Latency over gRPC (real store process + Redis, one call at a time)\n")
            print("| call | latency |\n| --- | --- |")
            print("\n".join(asyncio.run(grpc_rows(cluster, texts, args.requests))))
            print("\n## Through the gateway\n")
            print("| request | latency |\n| --- | --- |")
            print("\n".join(recall_rows(cluster, args.requests)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
