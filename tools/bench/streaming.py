"""Time to first byte of a cached answer, streamed vs not: `python -m tools.bench.streaming`.

A streamed hit is replayed as server-sent events; this measures that the replay does not make
the first byte arrive later than a plain JSON hit (for both APIs), and how long the whole replay
takes. Throwaway local cluster (exact tier, mock provider, no access log), raw keep-alive
HTTP/1.1 connections, one request at a time; figures in milliseconds (p50 / p95).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from tools.cluster import Cluster

QUESTION = "Explain how HTTP caching works, with an example of Cache-Control and ETag headers."


def _request(port: int, path: str, body: dict, extra: str) -> bytes:
    raw = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


async def _one(reader, writer, request: bytes) -> tuple[float, float, bytes]:
    """(first byte s, whole answer s, the head) for one request on a keep-alive connection."""
    started = time.perf_counter()
    writer.write(request)
    await writer.drain()
    data = await reader.read(1)
    first = time.perf_counter() - started
    data += await reader.readuntil(b"\r\n\r\n")
    head = data.lower()
    if b"content-length:" in head:
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    else:  # chunked: the stream ends with the zero-length chunk
        body = b""
        while not body.endswith(b"0\r\n\r\n"):
            body += await reader.read(65536)
    return first, time.perf_counter() - started, data


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:7.2f} / {p95 * 1000:6.2f}"


async def _measure(port: int, requests: int) -> list[tuple[str, str, str, int]]:
    openai_body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}]}
    anthropic_body = {"model": "claude-haiku-4-5", "max_tokens": 512, "messages": openai_body["messages"]}
    openai_auth = "Authorization: Bearer bench-stream\r\n"
    anthropic_auth = "x-api-key: bench-stream\r\nanthropic-version: 2023-06-01\r\n"
    cases = [
        ("openai    json", "/v1/chat/completions", openai_body, openai_auth),
        ("openai    sse", "/v1/chat/completions", {**openai_body, "stream": True}, openai_auth),
        ("anthropic json", "/v1/messages", anthropic_body, anthropic_auth),
        ("anthropic sse", "/v1/messages", {**anthropic_body, "stream": True}, anthropic_auth),
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rows = []
    for name, path, body, auth in cases:
        request = _request(port, path, body, auth)
        deadline = time.monotonic() + 10  # the first is a miss: the answer is stored after it
        while b"hit-exact" not in (await _one(reader, writer, request))[2]:
            assert time.monotonic() < deadline, f"{name}: never cached"
            await asyncio.sleep(0.05)
        firsts, wholes, misses = [], [], 0
        for _ in range(requests):
            first, whole, head = await _one(reader, writer, request)
            if b"hit-exact" not in head:  # a store call past its deadline on a busy host fails open
                misses += 1
                continue
            firsts.append(first)
            wholes.append(whole)
        rows.append((name, _summary(firsts), _summary(wholes), misses))
    writer.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="deja-bench-stream-"))
    cluster = Cluster.on_free_ports(
        state_dir=state, upstream="mock", mock_latency_ms=0, persist=False, semantic=False,
        extra_env={"DEJA_ACCESS_LOG": "false"}, sink=lambda name, line: None,
    )  # fmt: skip
    try:
        with cluster:
            rows = asyncio.run(_measure(cluster.gateway_port, args.requests))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"exact hits, {args.requests} sequential requests each (ms, p50 / p95)")
    print(f"{'':16}{'first byte':>16}{'whole answer':>18}{'not hits':>10}")
    for name, first, whole, misses in rows:
        print(f"{name:16}{first:>16}{whole:>18}{misses:>10}")


if __name__ == "__main__":
    main()
