"""What the gateway tells operators about each request: metrics, span attributes, one access line.

A pure-ASGI middleware opens a `RequestRecord` per request (a context variable, so tier code
anywhere below can add to it without threading it through calls). Tiers are timed with
`timed("exact" | "embed" | "search" | "verify" | "fetch" | "upstream")`, which also opens a
`deja.<tier>` span when tracing is on. `finish(...)` closes the books: request counters and
histograms, `deja.*` attributes on the HTTP server span, and the access log line with the
per-tier milliseconds. Prompt text and API keys never appear; the tenant is its hash prefix.

"End to end" latency is measured to the response start (headers): for a streamed answer that
is the time to first byte, which is what a cache changes.
"""

from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram
from starlette.middleware import Middleware

from deja import telemetry
from deja.logs import get_logger
from deja.metrics import LATENCY_BUCKETS
from deja.v1 import store_pb2
from services.gateway.pricing import PriceTable

log = get_logger("deja.gateway")

REQUESTS = Counter("deja_requests_total", "client requests by API and cache outcome", ["api", "outcome"])
REQUEST_SECONDS = Histogram(
    "deja_request_duration_seconds",
    "gateway time to the response start, by API and cache outcome",
    ["api", "outcome"],
    buckets=LATENCY_BUCKETS,
)
TIER_SECONDS = Histogram(
    "deja_tier_duration_seconds", "time spent in one cache tier or upstream", ["tier"], buckets=LATENCY_BUCKETS
)
SIMILARITY = Histogram(
    "deja_semantic_similarity", "cosine similarity of verified candidates", buckets=[i / 20 for i in range(10, 21)]
)
VERIFIER_SCORE = Histogram(
    "deja_semantic_verifier_score",
    "verifier probability of same intent, per candidate (gateway side)",
    buckets=[i / 10 for i in range(11)],
)
SEMANTIC_SHED = Counter(
    "deja_semantic_shed_total",
    "semantic lookups shed at once as misses, by reason: limit (the adaptive concurrency limit) or lag (the "
    "gateway's event loop behind)",
    ["reason"],
)
SEMANTIC_INDEX_SKIPPED = Counter(
    "deja_semantic_index_skipped_total",
    "misses whose answer was stored but not indexed, by reason: shed, timed_out (the lookup ran past its "
    "budget) or saturated (the question was still to embed while lookups were at the limit)",
    ["reason"],
)
CANDIDATES = Histogram("deja_semantic_candidates", "index candidates per semantic lookup", buckets=range(0, 11))
TOKENS_SERVED = Counter("deja_tokens_served_total", "tokens of answers served from cache", ["kind"])
COST_SAVED = Counter(
    "deja_cost_saved_usd_total", "estimated provider cost of the answers served from cache (price table)", ["model"]
)
JUDGE_CALLS = Counter(
    "deja_judge_calls_total", "judge calls by purpose (decide, audit) and outcome (yes, no, timeout, error, unclear)",
    ["purpose", "outcome"],
)  # fmt: skip
JUDGE_SECONDS = Histogram("deja_judge_duration_seconds", "latency of one judge call", buckets=LATENCY_BUCKETS)
JUDGE_TOKENS = Counter("deja_judge_tokens_total", "tokens the judge calls cost", ["kind"])
JUDGE_COST = Counter("deja_judge_cost_usd_total", "estimated provider cost of the judge calls (price table)", ["model"])


@dataclass
class RequestRecord:
    started: float = field(default_factory=time.perf_counter)
    ms: dict[str, float] = field(default_factory=dict)
    logged: bool = False  # finish() wrote the request's line (chat and messages)
    cache: str | None = None  # what the cache did, for the middleware's line ("bypass" for passthrough)


_current: ContextVar[RequestRecord | None] = ContextVar("deja_request", default=None)


class RequestObserver:
    """Pure ASGI middleware: one RequestRecord per HTTP request (streaming bodies stay in its context),
    and one access line for every request that `finish` did not log (passthrough, admin, stats, probes):
    method, path, status and time only; the path never holds a key or prompt text."""

    def __init__(self, app, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        record = RequestRecord()
        token = _current.set(record)
        status = 500  # what the client gets if the app dies before answering

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            _current.reset(token)
            if self.access_log and not record.logged:
                log.info(
                    "request", method=scope["method"], path=scope["path"][:200], status=status, cache=record.cache,
                    ms=round((time.perf_counter() - record.started) * 1000, 3),
                )  # fmt: skip


def middleware(access_log: bool) -> list[Middleware]:
    """Per-request records always; the OpenTelemetry HTTP server span only when tracing is on."""
    stack = [Middleware(RequestObserver, access_log=access_log)]
    if telemetry.enabled():
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        # Outermost, so the server span is current for everything below; probes and scrapes are not traced.
        stack.insert(0, Middleware(OpenTelemetryMiddleware, excluded_urls="healthz,readyz,metrics",
                                   exclude_spans=["receive", "send"]))  # fmt: skip
    return stack


_tracer = telemetry.tracer("deja.gateway")


def note_cache(outcome: str) -> None:
    """What the cache did with a request that `finish` does not log (e.g. "bypass"), for its access line."""
    record = _current.get()
    if record is not None:
        record.cache = outcome


@contextlib.contextmanager
def timed(tier: str):
    """Time a tier into the metrics and the request's access line (and a span when tracing)."""
    started = time.perf_counter()
    span = contextlib.nullcontext()
    if telemetry.enabled():
        span = _tracer.start_as_current_span(f"deja.{tier}", attributes={"deja.tier": tier})
    try:
        with span:
            yield
    finally:
        elapsed = time.perf_counter() - started
        TIER_SECONDS.labels(tier).observe(elapsed)
        record = _current.get()
        if record is not None:
            record.ms[tier] = round(record.ms.get(tier, 0.0) + elapsed * 1000, 3)


def candidates_scored(similarities: list[float], scores: list[float]) -> None:
    CANDIDATES.observe(len(similarities))
    for similarity, score in zip(similarities, scores, strict=True):
        SIMILARITY.observe(similarity)
        VERIFIER_SCORE.observe(score)
    telemetry.annotate(candidates=len(similarities), best_verifier_score=max(scores, default=None))


def served_from_cache(entry: store_pb2.CacheEntry, prices: PriceTable) -> None:
    TOKENS_SERVED.labels("prompt").inc(entry.usage.prompt_tokens)
    TOKENS_SERVED.labels("completion").inc(entry.usage.completion_tokens)
    model, cost = prices.cost(entry.model, entry.usage.prompt_tokens, entry.usage.completion_tokens)
    if cost:
        COST_SAVED.labels(model).inc(cost)


def judged(purpose: str, model: str, outcome: str, seconds: float, tokens_in: int, tokens_out: int,
           prices: PriceTable) -> None:  # fmt: skip
    JUDGE_CALLS.labels(purpose, outcome).inc()
    JUDGE_SECONDS.observe(seconds)
    JUDGE_TOKENS.labels("prompt").inc(tokens_in)
    JUDGE_TOKENS.labels("completion").inc(tokens_out)
    priced, cost = prices.cost(model, tokens_in, tokens_out)
    if cost:
        JUDGE_COST.labels(priced).inc(cost)
    record = _current.get()
    if record is not None and purpose == "decide":
        record.ms["judge"] = round(record.ms.get("judge", 0.0) + seconds * 1000, 3)


def finish(
    *, api: str, path: str, outcome: str, status: int, model: str, tenant: str | None, stream: bool,
    access_log: bool, **attributes,
) -> None:  # fmt: skip
    """Close the request's books: metrics, server-span attributes and the access line."""
    record = _current.get() or RequestRecord()
    elapsed = time.perf_counter() - record.started
    REQUESTS.labels(api, outcome).inc()
    REQUEST_SECONDS.labels(api, outcome).observe(elapsed)
    tenant_hash = tenant[:16] if tenant else None
    tier = outcome.removeprefix("hit-") if outcome.startswith("hit-") else "upstream"
    telemetry.annotate(outcome=outcome, tier=tier, model=model, tenant=tenant_hash, **attributes)
    if access_log:
        record.logged = True
        log.info(
            "request",
            path=path,
            status=status,
            cache=outcome,
            stream=stream,
            model=model,
            tenant=tenant_hash,
            ms=round(elapsed * 1000, 3),
            tiers_ms=record.ms or None,
            **attributes,
        )
