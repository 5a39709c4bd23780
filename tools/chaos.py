"""`deja chaos` (`make chaos`): a mixed workload against a supervised local cluster while a fault
loop SIGKILLs and SIGSTOPs random tiers, restarting none by hand. Prints one JSON object.

The workload, at a fixed open-loop rate: several tenants, both API formats, streamed and not;
misses (new questions), exact repeats and paraphrases (the semantic tier). Each tenant's questions
carry its own tag, and the mock provider quotes the question in its answer, so an answer that
names another tenant's tag is a `wrong_tenant_answers`. A `client_errors` is any response that is
not a complete answer (the mock provider never errs unless told to). After a miss the tool checks,
a little later, that the tenant's listing shows the entry (acknowledged); after the run, with every
tier up again, it checks each acknowledged entry one by one (`entries_lost`).

Faults start after the warm-up and stop before the end, so the last stretch shows recovery.
RSS growth compares each process at the end of the warm-up with the end of the run (a restarted
process has no figure: it is a new process).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil

from tools.bench.memory import rss_mb
from tools.cluster import Cluster, verifier_only_env

FAULTY_TIERS = ["redis", "store", "embedder", "semantic-index", "verifier"]  # and triton with --backend triton
TASKS = ["reverse a string", "read a file line by line", "sort a list of numbers", "parse a JSON string",
         "make an HTTP GET request", "remove duplicates from a list", "get the current date",
         "split a string by commas", "check if a file exists", "convert a string to an integer"]  # fmt: skip
LANGUAGES = ["Python", "Go", "Rust", "Java", "JavaScript", "Ruby", "C#", "Kotlin", "Swift", "PHP"]
OPENAI_MODEL, CLAUDE_MODEL = "gpt-4o-mini", "claude-haiku-4-5"


def question(tenant: int, n: int, paraphrase: bool = False) -> str:
    task, language = TASKS[n % len(TASKS)], LANGUAGES[(n // len(TASKS)) % len(LANGUAGES)]
    text = f"What is the way to {task} using {language}?" if paraphrase else f"How do I {task} in {language}?"
    return f"{text} (team t{tenant}, #{n})"


@dataclass
class Tally:
    requests: int = 0
    client_errors: int = 0
    wrong_tenant_answers: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the first few, to say what went wrong
    latencies_ms: list[float] = field(default_factory=list)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)  # (start s, ms, outcome) per answer


class Chaos:
    def __init__(self, cluster: Cluster, *, duration_s: float, rate: float, tenants: int, warmup_s: float,
                 fault_every_s: float, seed: int) -> None:  # fmt: skip
        self.cluster = cluster
        self.duration_s = duration_s
        self.rate = rate
        self.tenants = tenants
        self.warmup_s = warmup_s
        self.fault_every_s = fault_every_s
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.asked: dict[tuple[int, str], list[int]] = {}  # (tenant, api) -> question numbers answered once
        self.next_question = 0
        self.acknowledged: list[tuple[int, str, float, float]] = []  # (tenant, question, seen listed at, expiry)
        self.expired = 0  # acknowledged entries past their TTL at the end
        self.faults: list[dict] = []
        self.redis_kills: list[float] = []
        self.rss_warm: dict[str, tuple[int, float]] = {}
        self.pending: set[asyncio.Task] = set()

    # -- the workload ---------------------------------------------------------------------

    async def run(self) -> dict:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        # The entry checks get their own connections: a listing waits for a stopped store (the admin
        # deadline is long) and must not hold the workload's connections meanwhile.
        async with (
            httpx.AsyncClient(base_url=self.cluster.gateway_url, timeout=30, limits=limits) as http,
            httpx.AsyncClient(base_url=self.cluster.gateway_url, timeout=10) as checker,
        ):
            self.http, self.checker = http, checker
            self.t0 = time.monotonic()
            faults = asyncio.create_task(self.fault_loop())
            total = int(self.duration_s * self.rate)
            for i in range(total):
                await asyncio.sleep(max(0.0, self.t0 + i / self.rate - time.monotonic()))
                if not self.rss_warm and time.monotonic() - self.t0 >= self.warmup_s:
                    self.rss_warm = self.rss()
                self.spawn(self.one_request())
            await faults
            await asyncio.gather(*self.pending, return_exceptions=True)
            rss_end = self.rss()
            await self.until_every_tier_is_ready()
            lost = await self.entries_lost()
        latencies = np.array(self.tally.latencies_ms or [0.0])
        return {
            "requests": self.tally.requests,
            "client_errors": self.tally.client_errors,
            "wrong_tenant_answers": self.tally.wrong_tenant_answers,
            "entries_checked": len(self.acknowledged) - self.expired,
            "entries_lost": len(lost),
            "entries_expired": self.expired,
            "entries_lost_within_1s_of_a_redis_kill": sum(1 for t in lost if self.near_redis_kill(t)),
            "rss_growth": self.rss_growth(rss_end),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            **self.fault_latency(),
            "faults": len(self.faults),
            "killed_tier_back_s_max": max((f["back_after_s"] for f in self.faults if "back_after_s" in f), default=0),
            "fault_log": self.faults,
            "outcomes": dict(sorted(self.tally.outcomes.items())),
            "first_errors": self.tally.errors[:10],
            "duration_s": self.duration_s,
            "rate_per_s": self.rate,
        }

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def one_request(self) -> None:
        tenant = self.rng.randrange(self.tenants)
        api = self.rng.choice(["openai", "anthropic"])
        stream = self.rng.random() < 0.3
        known = self.asked.get((tenant, api), [])
        roll = self.rng.random()
        if known and roll < 0.35:
            n, paraphrase = self.rng.choice(known), False  # an exact repeat
        elif known and roll < 0.6:
            n, paraphrase = self.rng.choice(known), True  # the semantic tier's case
        else:
            n, paraphrase = self.next_question, False  # a new question: a miss
            self.next_question += 1
        text = question(tenant, n, paraphrase)
        started = time.monotonic()
        try:
            outcome, answer = await self.ask(tenant, api, text, stream)
        except Exception as exc:  # a broken connection, a malformed body: the client saw an error
            self.error(f"{api} stream={stream}: {type(exc).__name__}: {exc}"[:300])
            return
        finally:
            self.tally.requests += 1
        ms = (time.monotonic() - started) * 1000
        self.tally.latencies_ms.append(ms)
        self.tally.timeline.append((started - self.t0, ms, outcome))
        self.tally.outcomes[outcome] = self.tally.outcomes.get(outcome, 0) + 1
        tags = {f"(team t{t}," for t in range(self.tenants)} - {f"(team t{tenant},"}
        if any(tag in answer for tag in tags):
            self.tally.wrong_tenant_answers += 1
        if not paraphrase and n not in known:
            self.asked.setdefault((tenant, api), []).append(n)
        if outcome == "miss" and self.rng.random() < 0.5:
            self.spawn(self.acknowledge(tenant, text))

    def error(self, what: str) -> None:
        self.tally.client_errors += 1
        self.tally.errors.append(what)

    def key(self, tenant: int) -> str:
        return f"sk-chaos-tenant-{tenant}"

    async def ask(self, tenant: int, api: str, text: str, stream: bool) -> tuple[str, str]:
        """(X-Deja-Cache, the answer's text); raises when the answer is not a complete one."""
        messages = [{"role": "user", "content": text}]
        if api == "openai":
            path, headers = "/v1/chat/completions", {"Authorization": f"Bearer {self.key(tenant)}"}
            body = {"model": OPENAI_MODEL, "messages": messages, "stream": stream}
        else:
            path = "/v1/messages"
            headers = {"x-api-key": self.key(tenant), "anthropic-version": "2023-06-01"}
            body = {"model": CLAUDE_MODEL, "max_tokens": 256, "messages": messages, "stream": stream}
        async with self.http.stream("POST", path, headers=headers, content=orjson.dumps(body)) as response:
            raw = await response.aread()
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {raw[:200]!r}")
        outcome = response.headers.get("x-deja-cache", "?")
        text_out = stream_text(api, raw) if stream else json_text(api, raw)
        if not text_out:
            raise RuntimeError("an empty answer")
        return outcome, text_out

    # -- entries --------------------------------------------------------------------------

    async def acknowledge(self, tenant: int, text: str) -> None:
        """A miss's entry is acknowledged once the tenant's listing shows it (writes follow the response)."""
        await asyncio.sleep(1.5)
        expires_at = await self.listed(tenant, text)
        if expires_at:
            self.acknowledged.append((tenant, text, time.monotonic(), expires_at))

    async def listed(self, tenant: int, text: str) -> float | None:
        """When the tenant's entry for `text` expires (unix seconds), if the listing shows it."""
        try:
            response = await self.checker.get(
                "/v1/cache/entries", params={"prompt": text}, headers={"Authorization": f"Bearer {self.key(tenant)}"}
            )
            data = response.json()["data"] if response.status_code == 200 else []
            return max(float(entry["expires_at"]) for entry in data) if data else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def entries_lost(self) -> list[float]:
        """The acknowledgement times of the entries that are gone, checked one by one; entries past their
        TTL (time-sensitive questions get 5 minutes) are not lost, and are counted apart."""
        lost = []
        for tenant, text, acknowledged_at, expires_at in self.acknowledged:
            if expires_at <= time.time() + 1:
                self.expired += 1
            elif not await self.listed(tenant, text):
                lost.append(acknowledged_at)
        return lost

    def near_redis_kill(self, acknowledged_at: float) -> bool:
        return any(0 <= kill - acknowledged_at <= 1.0 for kill in self.redis_kills)

    # -- faults ---------------------------------------------------------------------------

    async def fault_loop(self) -> None:
        """One fault at a time, every `fault_every_s` (jittered), from the warm-up until 15% before the end."""
        tiers = [t for t in [*FAULTY_TIERS, "triton"] if t in self.cluster.procs]
        if self.fault_every_s <= 0:
            return  # the same load without faults: the baseline, or a capacity probe
        await asyncio.sleep(self.warmup_s)
        quiet_from = self.t0 + self.duration_s * 0.85
        while time.monotonic() < quiet_from:
            tier = self.rng.choice(tiers)
            proc = self.cluster.procs[tier]
            at = round(time.monotonic() - self.t0, 1)
            if proc.running and self.rng.random() < 0.5:
                pause = round(self.rng.uniform(2, 7), 1)
                self.faults.append({"at_s": at, "tier": tier, "fault": "SIGSTOP", "for_s": pause})
                os.kill(proc.popen.pid, signal.SIGSTOP)
                await asyncio.sleep(pause)
                os.kill(proc.popen.pid, signal.SIGCONT)
            elif proc.running:
                fault = {"at_s": at, "tier": tier, "fault": "SIGKILL"}
                self.faults.append(fault)
                if tier == "redis":
                    self.redis_kills.append(time.monotonic())
                pid = proc.popen.pid
                proc.popen.kill()  # the supervisor restarts it, with backoff
                fault["back_after_s"] = await self.back_after(proc, pid)
            await asyncio.sleep(self.fault_every_s * self.rng.uniform(0.5, 1.5))

    async def back_after(self, proc, old_pid: int, limit_s: float = 60.0) -> float:
        """Seconds until a killed tier is serving again (a new process, ready); probed off the event loop."""
        killed = time.monotonic()
        while time.monotonic() - killed < limit_s:
            if proc.popen.pid != old_pid and proc.running and await asyncio.to_thread(proc.ready):
                break
            await asyncio.sleep(0.1)
        return round(time.monotonic() - killed, 1)

    async def until_every_tier_is_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(lambda: all(p.running and p.ready() for p in self.cluster.procs.values())):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not recover after the faults")
            await asyncio.sleep(0.2)

    def fault_latency(self) -> dict:
        """p99 of the answers that started while a tier was hung (SIGSTOP), leaving out each hang's first
        second (the breaker's threshold of failures), beside the p99 of misses while nothing was wrong:
        the upstream's own time through the gateway."""
        hung = [(f["at_s"] + 1.0, f["at_s"] + f["for_s"]) for f in self.faults if f["fault"] == "SIGSTOP"]
        faulty = [(f["at_s"], f["at_s"] + f.get("for_s", f.get("back_after_s", 0)) + 1) for f in self.faults]
        during = [ms for t, ms, _ in self.tally.timeline if any(a <= t < b for a, b in hung)]
        calm = [ms for t, ms, o in self.tally.timeline if o == "miss" and not any(a <= t < b for a, b in faulty)]
        p99 = lambda xs: round(float(np.percentile(xs, 99)), 1) if xs else None  # noqa: E731
        by_fault: dict[str, list[float]] = {}
        for f in self.faults:
            start, end = f["at_s"], f["at_s"] + f.get("for_s", f.get("back_after_s", 0)) + 1
            by_fault.setdefault(f"{f['tier']} {f['fault']}", []).extend(
                ms for t, ms, _ in self.tally.timeline if start <= t < end
            )
        return {
            "p99_ms_hung_tier_after_1s": p99(during),
            "p99_ms_miss_no_fault": p99(calm),
            "p99_ms_by_fault": {name: p99(values) for name, values in sorted(by_fault.items())},
        }

    # -- memory ---------------------------------------------------------------------------

    def rss(self) -> dict[str, tuple[int, float]]:
        out = {}
        for name, proc in self.cluster.procs.items():
            try:
                out[name] = (proc.popen.pid, rss_mb(proc.popen.pid))
            except (psutil.Error, AttributeError):
                pass
        return out

    def rss_growth(self, end: dict[str, tuple[int, float]]) -> dict[str, float | None]:
        """End RSS over warm RSS, minus 1, per process; None for a process restarted in between."""
        growth = {}
        for name, (pid, warm) in self.rss_warm.items():
            pid_end, mb = end.get(name, (None, 0.0))
            growth[name] = round(mb / warm - 1, 3) if pid_end == pid and warm else None
        return growth


def json_text(api: str, raw: bytes) -> str:
    body = orjson.loads(raw)
    if api == "openai":
        return body["choices"][0]["message"]["content"]
    return "".join(block.get("text", "") for block in body["content"])


def stream_text(api: str, raw: bytes) -> str:
    """The text of a complete SSE stream; raises on a stream that broke off or carried an error."""
    pieces, done = [], False
    for line in raw.decode().splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        event = orjson.loads(data)
        if event.get("type") == "error" or (api == "openai" and "error" in event):
            raise RuntimeError(f"error event: {data[:200]}")
        if api == "openai":
            pieces += [c["delta"].get("content") or "" for c in event.get("choices", [])]
        elif event.get("type") == "content_block_delta":
            pieces.append(event["delta"].get("text", ""))
        elif event.get("type") == "message_stop":
            done = True
    if not done:
        raise RuntimeError("the stream ended without its last event")
    return "".join(pieces)


def run_chaos(args) -> int:
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="deja-chaos-"))
    log_path = state / "cluster.log"
    state.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("a", buffering=1)
    env = verifier_only_env(state)  # paraphrases are served, not judged
    cluster = Cluster.on_free_ports(
        state_dir=state, upstream="mock", mock_latency_ms=args.mock_latency_ms, semantic=True, backend=args.backend,
        persist=True, supervised=True, extra_env=env, sink=lambda name, line: handle.write(f"{name:<14}| {line}\n"),
    )  # fmt: skip
    with cluster:
        chaos = Chaos(
            cluster, duration_s=args.duration, rate=args.rate, tenants=args.tenants,
            warmup_s=min(args.warmup, args.duration / 4), fault_every_s=args.fault_every, seed=args.seed,
        )  # fmt: skip
        report = asyncio.run(chaos.run())
    report["cluster_log"] = str(log_path)
    print(json.dumps(report))
    failed = report["client_errors"] or report["wrong_tenant_answers"] or report["entries_lost"]
    return 1 if failed else 0
