"""Open-loop overload for `deja bench --semantic`: paraphrases offered at a fixed rate (twice what the
tier served at 16 clients), with exact hits probed alongside.

Closed-loop clients slow down when the server does, so they never show overload; here requests
start on a clock whether or not earlier ones finished (each on a free keep-alive connection, a
new one when none is free). A separate connection asks a cached question word for word every
20 ms, before and during the overload, so the exact tier's latency under load is compared with
its own idle figure. Runs in a spawned process with the raw HTTP client of `tools.bench.gateway`, so the
load generator costs as little CPU as it can on the cores it shares with the cluster.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import uvloop

from tools.bench.gateway import CHAT_PATH, HttpConnection, post_bytes

PROBE_EVERY_S = 0.020


@dataclass
class Samples:
    ms: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)  # "HTTP 502", "ConnectionResetError", ...

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())

    def error(self, kind: str) -> None:
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def add(self, status: int, head: bytes, seconds: float) -> None:
        if status != 200:
            self.error(f"HTTP {status}")
            return
        self.ms.append(seconds * 1000)
        outcome = header(head, b"x-deja-cache") or "none"
        if header(head, b"x-deja-semantic") == "shed":
            outcome = "shed"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def summary(self) -> dict:
        ms = np.array(self.ms) if self.ms else np.array([0.0])
        return {
            "requests": len(self.ms) + self.errors, "errors": self.errors,
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "outcomes": self.outcomes, "error_kinds": self.error_kinds,
        }  # fmt: skip


def header(head: bytes, name: bytes) -> str:
    """A response header's value from the raw client's lower-cased head; empty when absent."""
    start = head.find(b"\r\n" + name + b":")
    if start < 0:
        return ""
    end = head.index(b"\r\n", start + 2)
    return head[start + len(name) + 3 : end].strip().decode()


async def _probe(port: int, probe: bytes, until: float) -> Samples:
    samples = Samples()
    conn = await HttpConnection.open(port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                status, head, _ = await conn.send(probe)
            except (OSError, asyncio.IncompleteReadError) as exc:
                samples.error(type(exc).__name__)
                conn = await HttpConnection.open(port)
                continue
            samples.add(status, head, time.perf_counter() - started)
            await asyncio.sleep(max(0.0, PROBE_EVERY_S - (time.perf_counter() - started)))
    finally:
        await conn.close()
    return samples


async def _offer(port: int, requests: list[bytes], rate: float, until: float) -> tuple[Samples, Samples]:
    """(every offered request, the shed ones alone)."""
    every, shed = Samples(), Samples()
    free: list[HttpConnection] = []

    async def one(payload: bytes) -> None:
        # A keep-alive connection the server closed while it sat idle (uvicorn: after 5 s) is dropped,
        # as a pooling client does; the load generator's own stale sockets are not the gateway's errors.
        while free and free[-1].reader.at_eof():
            free.pop().writer.close()
        reused = bool(free)
        conn = free.pop() if free else await HttpConnection.open(port)
        started = time.perf_counter()
        try:
            status, head, _ = await conn.send(payload)
        except (OSError, asyncio.IncompleteReadError) as exc:
            every.error(f"{type(exc).__name__} on a {'reused' if reused else 'new'} connection")
            return
        seconds = time.perf_counter() - started
        every.add(status, head, seconds)
        if status == 200 and header(head, b"x-deja-semantic") == "shed":
            shed.add(status, head, seconds)
        free.append(conn)

    tasks = set()
    started, sent = time.perf_counter(), 0
    while (due := started + sent / rate) < until:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        task = asyncio.create_task(one(requests[sent % len(requests)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    for conn in free:
        await conn.close()
    return every, shed


async def _run(port: int, key: str, paraphrases: list[bytes], probe_body: bytes, rate: float, seconds: float) -> dict:
    probe = post_bytes(port, CHAT_PATH, probe_body, key)
    idle = await _probe(port, probe, time.perf_counter() + min(seconds, 5.0))
    until = time.perf_counter() + seconds
    requests = [post_bytes(port, CHAT_PATH, body, key) for body in paraphrases]
    (offered, shed), loaded = await asyncio.gather(
        _offer(port, requests, rate, until), _probe(port, probe, until)
    )  # fmt: skip
    return {
        "offered_per_s": round(rate, 1), "seconds": seconds, "offered": offered.summary(), "shed": shed.summary(),
        "exact_idle": idle.summary(), "exact_loaded": loaded.summary(),
    }  # fmt: skip


def overload(port: int, key: str, paraphrases: list[bytes], probe_body: bytes, rate: float, seconds: float) -> dict:
    """In a spawned process: see the module docstring."""
    return uvloop.run(_run(port, key, paraphrases, probe_body, rate, seconds))


def print_overload(result: dict) -> None:
    offered, shed = result["offered"], result["shed"]
    idle, loaded = result["exact_idle"], result["exact_loaded"]
    total = max(offered["requests"], 1)
    print(f"\noverload: paraphrases offered open-loop at {result['offered_per_s']:.0f}/s for {result['seconds']:g} s")
    print("                          requests   p50 ms   p99 ms   errors")
    for name, row in (("all offered", offered), ("  of which shed", shed), ("exact hit, idle", idle),
                      ("exact hit, under load", loaded)):  # fmt: skip
        print(f"  {name:<22}{row['requests']:>10}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['errors']:>9}")
    print(f"  outcomes of the offered: {offered['outcomes']} ({shed['requests'] / total:.0%} shed)")
    for name, row in (("offered", offered), ("exact probes", loaded)):
        if row["error_kinds"]:
            print(f"  errors of the {name}: {row['error_kinds']}")
    print("targets (issue 15): the excess shed in < 5 ms each, no client error, exact p99 within 2x of idle")
