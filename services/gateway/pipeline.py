"""The cache pipeline of one API format (`POST /v1/chat/completions`, `POST /v1/messages`), step by
step: session headers, cache headers, the body read and parsed once, session recall, exact lookup,
semantic lookup (verifier, judge), upstream on a miss, then — after the response — the cache write
and the session's recording.

What is specific to an API (parsing, key, stream shapes, error shape, its piece of memory) comes
from its ApiFormat (`openai/`, `anthropic/`); per-request cache control from `cache_headers`;
session memory from `session_memory`. Every cache step fails open: a store that is down, slow or
broken turns into a miss (and a skipped write), never into an error for the client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from deja.clients import DependencyError, StoreClient, failed_open
from deja.logs import get_logger
from deja.v1 import common_pb2, store_pb2
from services.gateway import compact_answers, observe
from services.gateway.api_format import ApiFormat, CacheableRequest, entry_key
from services.gateway.body import read_request
from services.gateway.cache_headers import CacheControl, Policy, cache_control_from
from services.gateway.errors import ApiError
from services.gateway.evidence import ServedMatch
from services.gateway.identity import tenant_of
from services.gateway.judge import Judge
from services.gateway.pricing import PriceTable
from services.gateway.semantic import Lookup, SemanticHit, SemanticTier
from services.gateway.semantic_key import SemanticParts
from services.gateway.semantic_policy import SemanticPolicy
from services.gateway.session_memory import Memory, SessionTurn
from services.gateway.settings import GatewaySettings
from services.gateway.tiers import Tiers
from services.gateway.upstream import Upstream

log = get_logger("deja.gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _upstream_error(fmt: ApiFormat, response: httpx2.Response, body: bytes, headers: dict[str, str]) -> Response:
    """Pass the provider's error through; wrap it only when it is not in the API's own error shape."""
    headers.pop("content-type", None)
    try:
        faithful = fmt.is_error_body(orjson.loads(body))
    except orjson.JSONDecodeError:
        faithful = False
    if faithful:
        return Response(body, status_code=response.status_code, headers=headers, media_type="application/json")
    text = body[:500].decode("utf-8", "replace")
    error = ApiError(
        response.status_code,
        f"upstream answered {response.status_code}: {text}",
        type="upstream_error",
        code=f"upstream_{response.status_code}",
    )
    return fmt.error_response(error, headers)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    """An async body (a sync iterator would be stepped through a worker thread)."""
    yield data


class ReplayResponse(StreamingResponse):
    """A cached answer replayed as SSE: every event is known, so it goes out in one write with its
    length and without the disconnect watcher a live stream needs. Event by event, through that
    watcher, its first byte came 1-2 ms after a JSON hit's; now they match (bench_streaming.py).
    Still a StreamingResponse: the events are those of a live stream."""

    async def __call__(self, scope, receive, send) -> None:
        await self.stream_response(send)
        if self.background is not None:
            await self.background()


def _drop(started: asyncio.Task | None) -> None:
    """Abandon a raced upstream request: cancel it, or close its stream if it already answered."""
    if started is None:
        return
    if not started.done():
        started.cancel()
        return
    if not started.cancelled() and started.exception() is None:
        asyncio.get_running_loop().create_task(started.result().aclose())


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def _age_s(entry: store_pb2.CacheEntry) -> int:
    return max(0, (time.time_ns() // 1_000_000 - entry.created_at_ms) // 1000)


@dataclass(frozen=True)
class SemanticStep:
    """What the semantic tier decided for one request: a hit to serve (`outcome` is its X-Deja-Cache),
    or a miss with the lookup (its vector is reused to index the answer), the upstream request a
    race already started, and the judge's outcome when it was asked (`outcome`, for X-Deja-Judge)."""

    lookup: Lookup | None = None
    hit: SemanticHit | None = None
    started_upstream: asyncio.Task | None = None
    outcome: str = ""


@dataclass(frozen=True)
class WritePlan:
    """How to cache the answer of a miss, decided before it is forwarded."""

    scope: common_pb2.Scope
    key: bytes
    ttl_s: int  # 0 = the store's default
    parts: SemanticParts | None  # set when the answer may also be indexed for semantic hits
    lookup: Lookup | None  # the embedding from the failed semantic lookup, reused for indexing


class CachePipeline:
    """One API format's route. The tiers it calls (`Tiers`) are opened in the app's lifespan, inside
    uvicorn's event loop, after this object and its route exist."""

    def __init__(
        self, fmt: ApiFormat, settings: GatewaySettings, prices: PriceTable, tiers: Callable[[], Tiers]
    ) -> None:
        self.fmt = fmt
        self.tiers = tiers
        self.judge_mode = settings.judge_mode  # "race": the upstream request starts while the judge decides
        self.audit_rate = settings.audit_rate  # share of auto-served hits judged after the response
        self.max_body_bytes = settings.max_body_bytes
        self.access_log = settings.access_log
        self.prices = prices
        self._writes: set[asyncio.Task] = set()

    def route(self) -> Route:
        return Route(self.fmt.route, self.handle, methods=["POST"])

    # -- the tiers of the running app (tiers.py) ------------------------------------------

    @property
    def store(self) -> StoreClient:
        return self.tiers().store

    @property
    def upstream(self) -> Upstream:
        return self.tiers().upstreams[self.fmt.api]

    @property
    def semantic(self) -> SemanticTier | None:
        return self.tiers().semantic

    @property
    def judge(self) -> Judge | None:
        return self.tiers().judge  # None: DEJA_JUDGE=off, the uncertain band is a miss

    @property
    def policy(self) -> SemanticPolicy:
        return self.tiers().policy

    @property
    def memory(self) -> Memory:
        return self.tiers().memory

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let background cache writes finish (on shutdown)."""
        if self._writes:
            await asyncio.wait(self._writes, timeout=timeout_s)

    # -- the endpoint ------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        turn = None
        api_key = self.fmt.api_key(request.headers)
        try:
            turn = self.memory.turn(request.headers, api_key, self.fmt)  # bad memory headers: 400 before all else
            response = await self._handle(request, api_key, turn)
            response = compact_answers.compact(response, request.headers, self.fmt.api)
        except ApiError as exc:  # in the API's own error shape
            response = self.fmt.error_response(exc)
        if turn is not None:
            turn.finish(response)
        return response

    async def _handle(self, request: Request, api_key: str | None, turn: SessionTurn | None) -> Response:
        started = time.perf_counter()
        control = cache_control_from(request.headers)
        chat = await read_request(request, self.fmt, self.max_body_bytes)
        compact_answers.refuse_stream(request.headers, chat)
        if turn is not None:
            chat = await turn.recall(chat)  # the session's recent turns in front, before the request is keyed
        # No key, no tenant: such a request is forwarded but never read from or written to the cache.
        policy = control.policy if api_key else Policy.BYPASS
        scope = common_pb2.Scope(tenant=tenant_of(api_key), namespace=control.namespace) if api_key else None
        key = entry_key(scope.tenant, chat.cache_key()) if scope else chat.cache_key()

        if policy is Policy.NORMAL:
            entry = await self._lookup(scope, key, control)
            if entry is not None:
                response = self._serve(chat, entry, {"x-deja-cache": "hit-exact"}, turn)
                self._log(started, chat, scope, "hit-exact", response.status_code)
                return response

        parts = self.fmt.semantic_parts(chat)
        semantic = (
            control.semantic and self.semantic is not None and self.policy.may_use_semantic(parts.query, chat.body)
        )
        headers = self.upstream.request_headers(request.headers)
        step = SemanticStep()
        if semantic and policy is Policy.NORMAL:
            step = await self._semantic(request.headers, headers, chat, scope, parts, control)
            if step.hit is not None:
                return self._serve_semantic(started, chat, scope, step.hit, step.outcome, turn)
        lookup, started_upstream, judge_outcome = step.lookup, step.started_upstream, step.outcome

        plan = None
        if policy is not Policy.BYPASS:
            ttl_s = control.ttl_with(self.policy.ttl_for(parts.query))
            plan = WritePlan(scope, key, ttl_s, parts if semantic else None, lookup)
        if policy is Policy.NORMAL:
            self.tiers().misses.add(scope.tenant)
        if chat.stream:
            response = await self._stream_from_upstream(chat, headers, policy.value, plan, turn, started_upstream)
        else:
            response = await self._fetch_from_upstream(chat, headers, policy.value, plan, turn, started_upstream)
        if plan is not None and response.status_code == 200:
            response.headers["x-deja-entry"] = key.hex()  # the id the answer is stored under
        if judge_outcome:
            response.headers["x-deja-judge"] = judge_outcome  # asked, and it was not a yes
        if lookup is not None and lookup.shed:
            response.headers["x-deja-semantic"] = "shed"  # not looked up: the tier was saturated
        self._log(started, chat, scope, policy.value, response.status_code)
        return response

    # -- semantic hits, the judge and the audit ---------------------------------------------

    async def _semantic(self, client_headers, headers, chat, scope, parts: SemanticParts, control) -> SemanticStep:
        """L2 + L3 under the error budget: a hit to serve, or what the miss that follows needs (the
        lookup's vector, the raced upstream request, the judge's outcome for X-Deja-Judge)."""
        judge = control.judge and self.judge is not None
        lookup = await self.semantic.lookup(scope, parts, self.fmt.name, control.threshold, control.max_error, judge)
        if lookup.hit is not None and control.fresh(_age_s(lookup.hit.entry)):
            if judge and random.random() < self.audit_rate:
                self._background(self._audit(client_headers, scope, parts.query, lookup.hit))
            return SemanticStep(lookup, hit=lookup.hit, outcome="hit-semantic")
        match = lookup.uncertain
        if match is None or not judge or not control.fresh(_age_s(match.entry)):
            return SemanticStep(lookup)
        started_upstream = None
        if self.judge_mode == "race":
            started_upstream = asyncio.create_task(self._send_upstream(chat, headers))
        entry, outcome = await self._judged(client_headers, scope, parts.query, match)
        if entry is None:
            return SemanticStep(lookup, started_upstream=started_upstream, outcome=outcome)
        _drop(started_upstream)
        judged = SemanticHit(entry, match.similarity, match.probability, match.pair, match.cached_question)
        return SemanticStep(lookup, hit=judged, outcome="hit-judged")

    def _serve_semantic(self, started: float, chat, scope, hit: SemanticHit, outcome: str, turn) -> Response:
        match = ServedMatch(hit.probability, hit.similarity, hit.pair)
        self.semantic.evidence.served(scope.tenant, hit.entry.entry_id, match)
        headers = {
            "x-deja-cache": outcome,
            **({"x-deja-judge": "yes"} if outcome == "hit-judged" else {}),
            "x-deja-similarity": f"{hit.similarity:.4f}",
            "x-deja-verifier-score": f"{hit.probability:.4f}",
        }
        response = self._serve(chat, hit.entry, headers, turn)
        self._log(
            started, chat, scope, outcome, response.status_code,
            similarity=round(hit.similarity, 4), verifier_score=round(hit.probability, 4),
        )  # fmt: skip
        return response

    async def _ask_judge(self, client_headers, question: str, match: SemanticHit, purpose: str) -> tuple:
        """(the verdict, the tenant counters every judge call adds to: calls and tokens)."""
        verdict = await self.judge.ask(self.fmt, client_headers, question, match.cached_question)
        model = self.judge.models[self.fmt.name]
        observe.judged(purpose, model, verdict.outcome, verdict.seconds, verdict.input_tokens, verdict.output_tokens,
                       self.prices)  # fmt: skip
        counters = {
            "judge_calls": 1, "judge_input_tokens": verdict.input_tokens, "judge_output_tokens": verdict.output_tokens,
            "judge_failed": int(verdict.same is None),
        }  # fmt: skip
        return verdict, counters

    async def _judged(self, client_headers, scope, question: str, match: SemanticHit) -> tuple:
        """Ask the judge about an uncertain match: (the entry to serve on "yes", counted as a semantic hit,
        or None; the judge's outcome). Every outcome is recorded; a verdict becomes an observation."""
        verdict, counters = await self._ask_judge(client_headers, question, match, "decide")
        entry = None
        if verdict.same:
            try:
                entry = await self.store.get(scope, bytes.fromhex(match.entry.entry_id), store_pb2.TIER_SEMANTIC)
            except DependencyError as exc:
                failed_open(log, "judged_fetch_failed_open", exc)
        counters.update(judge_yes=int(verdict.same is True), judge_no=int(verdict.same is False),
                        hits_judged=int(entry is not None))  # fmt: skip
        self._background(self.semantic.evidence.record(
            scope.tenant, score=match.probability, similarity=match.similarity, same=verdict.same,
            source=store_pb2.OBSERVATION_SOURCE_JUDGE, pair=match.pair, counters=counters,
        ))  # fmt: skip
        # A "yes" for an answer that expired (or a store that failed) since the lookup is still a miss.
        return entry, ("expired" if verdict.same and entry is None else verdict.outcome)

    async def _audit(self, client_headers, scope, question: str, hit: SemanticHit) -> None:
        """After an auto-served hit: ask the judge anyway, so the auto band keeps being checked. A "no"
        is an error against the budget and vetoes the pairing."""
        verdict, counters = await self._ask_judge(client_headers, question, hit, "audit")
        counters.update(audits=int(verdict.same is not None), audit_errors=int(verdict.same is False))
        if verdict.same is False:
            log.warning("audit_found_wrong_hit", entry_id=hit.entry.entry_id[:16], score=round(hit.probability, 4))
        await self.semantic.evidence.record(
            scope.tenant, score=hit.probability, similarity=hit.similarity, same=verdict.same,
            source=store_pb2.OBSERVATION_SOURCE_AUDIT, pair=hit.pair, counters=counters,
        )  # fmt: skip

    # -- cache side --------------------------------------------------------------------

    async def _lookup(self, scope: common_pb2.Scope, key: bytes, control: CacheControl) -> store_pb2.CacheEntry | None:
        try:
            with observe.timed("exact"):
                entry = await self.store.get(scope, key, store_pb2.TIER_EXACT)
        except DependencyError as exc:
            failed_open(log, "exact_lookup_failed_open", exc)
            return None
        if entry is None or entry.api_format != self.fmt.name or not control.fresh(_age_s(entry)):
            return None
        return entry

    def _serve(
        self, chat: CacheableRequest, entry: store_pb2.CacheEntry, headers: dict[str, str], turn: SessionTurn | None
    ) -> Response:
        observe.served_from_cache(entry, self.prices)
        headers = {**headers, "x-deja-entry": entry.entry_id, "age": str(_age_s(entry))}
        answer = orjson.loads(entry.response) if chat.stream or turn is not None else None
        if turn is not None:
            turn.answer = answer  # recorded once the response has been sent
        if not chat.stream:
            return Response(entry.response, headers=headers, media_type="application/json")
        replay = b"".join(self.fmt.replay(answer, chat))
        headers = {**headers, **SSE_HEADERS, "content-length": str(len(replay))}
        return ReplayResponse(_once(replay), headers=headers, media_type="text/event-stream")

    def _write_later(self, plan: WritePlan, chat: CacheableRequest, body: bytes, answer: dict[str, Any]) -> None:
        entry = store_pb2.CacheEntry(
            api_format=self.fmt.name, model=chat.model, response=body, usage=self.fmt.usage(answer),
            prompt=self.fmt.prompt_of(chat),
        )  # fmt: skip
        # An answer that calls tools is never served semantically: it is cached for the exact request only.
        index = plan.parts is not None and not self.fmt.calls_tools(answer)
        self._background(self._write(plan, entry, index))

    def _background(self, work) -> None:
        """Run cache bookkeeping after the response; `drain` waits for it on shutdown."""
        task = asyncio.create_task(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, plan: WritePlan, entry: store_pb2.CacheEntry, index: bool) -> None:
        try:
            result = await self.store.put(plan.scope, plan.key, entry, plan.ttl_s)
        except DependencyError as exc:
            failed_open(log, "exact_write_failed_open", exc)
            return
        if not result.stored:
            log.info("exact_write_skipped", reason=result.reason, size_bytes=result.size_bytes)
            return
        if index and self.semantic is not None:
            try:
                await self.semantic.remember(plan.scope, plan.parts, plan.lookup, plan.key.hex(), result.expires_at_ms)
            except DependencyError as exc:
                failed_open(log, "semantic_write_failed_open", exc)

    # -- upstream side -----------------------------------------------------------------

    async def _send_upstream(self, chat, headers) -> httpx2.Response:
        """The provider request of a miss (a stream asks for usage, see upstream_body)."""
        if chat.stream:
            return await self.upstream.send("POST", self.fmt.upstream_path, headers, self.fmt.upstream_body(chat),
                                            stream=True)  # fmt: skip
        return await self.upstream.send("POST", self.fmt.upstream_path, headers, chat.raw, stream=False)

    async def _fetch_from_upstream(
        self, chat, headers, outcome: str, plan: WritePlan | None, turn: SessionTurn | None,
        started: asyncio.Task | None = None,
    ) -> Response:  # fmt: skip
        upstream = await (started or self._send_upstream(chat, headers))
        body = upstream.content
        out_headers = {**self.upstream.response_headers(upstream), "x-deja-cache": outcome}
        if upstream.status_code != 200:
            return _upstream_error(self.fmt, upstream, body, out_headers)
        answer = _json_object(body) if plan is not None or turn is not None else None
        if plan is not None and answer is not None and self.fmt.is_cacheable(answer):
            self._write_later(plan, chat, body, answer)
        if turn is not None:
            turn.answer = answer  # recorded once the response has been sent
        return Response(body, status_code=200, headers=out_headers)

    async def _stream_from_upstream(
        self, chat, headers, outcome: str, plan: WritePlan | None, turn: SessionTurn | None,
        started: asyncio.Task | None = None,
    ) -> Response:  # fmt: skip
        upstream = await (started or self._send_upstream(chat, headers))
        out_headers = {**self.upstream.response_headers(upstream), "x-deja-cache": outcome}
        is_sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
        if upstream.status_code != 200 or not is_sse:
            try:
                body = await upstream.aread()
            except httpx2.HTTPError:
                body = b""
            finally:
                await upstream.aclose()
            if upstream.status_code != 200:
                return _upstream_error(self.fmt, upstream, body, out_headers)
            if turn is not None:
                turn.answer = _json_object(body)
            return Response(body, status_code=200, headers=out_headers)  # not a stream: pass it on, uncached

        assembler = self.fmt.assembler(chat)

        async def relay():
            try:
                async for data in upstream.aiter_bytes():
                    forward = assembler.feed(data)
                    if forward:
                        yield forward
                rest = assembler.flush()
                if rest:
                    yield rest
            except httpx2.HTTPError as exc:
                # Headers are gone already: tell the client in-band, the way providers do.
                log.warning("upstream_stream_broken", error=type(exc).__name__)
                yield self.fmt.stream_error("upstream stream broke off", "upstream_stream_broken")
                return
            finally:
                await upstream.aclose()
            if not assembler.done or assembler.error is not None:
                return
            answer = assembler.completion()  # the one assembly of this stream: for the cache and the session
            if plan is not None and self.fmt.is_cacheable(answer):
                self._write_later(plan, chat, orjson.dumps(answer), answer)
            if turn is not None:
                turn.record(answer)

        out_headers.pop("content-type", None)
        return StreamingResponse(relay(), headers={**out_headers, **SSE_HEADERS}, media_type="text/event-stream")

    def _log(self, started: float, chat: CacheableRequest, scope, outcome: str, status: int, **attributes) -> None:
        observe.finish(
            api=self.fmt.api, path=self.fmt.route, outcome=outcome, status=status, model=chat.model,
            tenant=scope.tenant if scope else None, stream=chat.stream, access_log=self.access_log, **attributes,
        )  # fmt: skip
