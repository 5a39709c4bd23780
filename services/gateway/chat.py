"""POST /v1/chat/completions: exact-cache lookup, upstream on a miss, store in the background.

Every cache step fails open: a store that is down, slow or broken turns into a miss (and a
skipped write), never into an error for the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from deja.clients import DependencyError, StoreClient
from deja.logs import get_logger
from deja.v1 import common_pb2, store_pb2
from services.gateway import observe
from services.gateway.cache_policy import Policy, api_key_from, policy_from, tenant_of
from services.gateway.chat_request import API_FORMAT, ChatRequest, parse_chat_request
from services.gateway.errors import ApiError, error_body
from services.gateway.pricing import PriceTable
from services.gateway.semantic import Lookup, SemanticTier
from services.gateway.semantic_key import SemanticParts, semantic_parts
from services.gateway.semantic_policy import SemanticPolicy, calls_tools
from services.gateway.sse import StreamAssembler, event, is_cacheable, replay_chunks
from services.gateway.upstream import Upstream

log = get_logger("deja.gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed `limit` (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _usage_of(completion: dict[str, Any]) -> common_pb2.Usage:
    usage = completion.get("usage") or {}

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value >= 0 else 0

    return common_pb2.Usage(
        prompt_tokens=count("prompt_tokens"),
        completion_tokens=count("completion_tokens"),
        total_tokens=count("total_tokens"),
    )


def _upstream_error(response: httpx.Response, body: bytes, headers: dict[str, str]) -> Response:
    """Pass the provider's error through; wrap it only when it is not an OpenAI-style body."""
    try:
        parsed = orjson.loads(body)
        faithful = isinstance(parsed, dict) and isinstance(parsed.get("error"), dict | str)
    except orjson.JSONDecodeError:
        faithful = False
    if not faithful:
        text = body[:500].decode("utf-8", "replace")
        body = error_body(
            f"upstream answered {response.status_code}: {text}",
            type="upstream_error",
            code=f"upstream_{response.status_code}",
        )
    headers.pop("content-type", None)
    return Response(body, status_code=response.status_code, headers=headers, media_type="application/json")


@dataclass(frozen=True)
class WritePlan:
    """How to cache the answer of a miss, decided before it is forwarded."""

    scope: common_pb2.Scope
    key: bytes
    ttl_s: int  # 0 = the store's default
    parts: SemanticParts | None  # set when the answer may also be indexed for semantic hits
    lookup: Lookup | None  # the embedding from the failed semantic lookup, reused for indexing


class ChatCompletions:
    def __init__(
        self, *, store: StoreClient, upstream: Upstream, max_body_bytes: int, access_log: bool,
        policy: SemanticPolicy, semantic: SemanticTier | None, prices: PriceTable | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.upstream = upstream
        self.policy = policy
        self.semantic = semantic
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.prices = prices or PriceTable.parse("")
        self._writes: set[asyncio.Task] = set()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let background cache writes finish (on shutdown)."""
        if self._writes:
            await asyncio.wait(self._writes, timeout=timeout_s)

    # -- the endpoint ------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        chat = parse_chat_request(await read_body(request, self.max_body_bytes))
        api_key = api_key_from(request.headers.get("authorization"))
        # No key, no tenant: such a request is forwarded but never read from or written to the cache.
        policy = policy_from(request.headers.get("cache-control")) if api_key else Policy.BYPASS
        scope = common_pb2.Scope(tenant=tenant_of(api_key)) if api_key else None
        key = chat.cache_key()

        if policy is Policy.NORMAL:
            entry = await self._lookup(scope, key)
            if entry is not None:
                response = self._serve(chat, entry, {"x-deja-cache": "hit-exact"})
                self._log(started, chat, scope, "hit-exact", response.status_code)
                return response

        parts = semantic_parts(chat)
        semantic = self.semantic is not None and self.policy.may_use_semantic(parts.query, chat.body)
        lookup = None
        if semantic and policy is Policy.NORMAL:
            lookup = await self.semantic.lookup(scope, parts)
            if lookup.hit is not None:
                hit = lookup.hit
                headers = {
                    "x-deja-cache": "hit-semantic",
                    "x-deja-similarity": f"{hit.similarity:.4f}",
                    "x-deja-verifier-score": f"{hit.probability:.4f}",
                }
                response = self._serve(chat, hit.entry, headers)
                self._log(
                    started, chat, scope, "hit-semantic", response.status_code,
                    similarity=round(hit.similarity, 4), verifier_score=round(hit.probability, 4),
                )  # fmt: skip
                return response

        headers = self.upstream.request_headers(request.headers)
        plan = None
        if policy is not Policy.BYPASS:
            plan = WritePlan(scope, key, self.policy.ttl_for(parts.query), parts if semantic else None, lookup)
        if policy is Policy.NORMAL:
            self._background(self._count_miss(scope))
        if chat.stream:
            response = await self._stream_from_upstream(chat, headers, policy.value, plan)
        else:
            response = await self._fetch_from_upstream(chat, headers, policy.value, plan)
        self._log(started, chat, scope, policy.value, response.status_code)
        return response

    # -- cache side --------------------------------------------------------------------

    async def _lookup(self, scope: common_pb2.Scope, key: bytes) -> store_pb2.CacheEntry | None:
        try:
            with observe.timed("exact"):
                entry = await self.store.get(scope, key, store_pb2.TIER_EXACT)
        except DependencyError as exc:
            log.warning("exact_lookup_failed_open", error=str(exc))
            return None
        if entry is None or entry.api_format != API_FORMAT:
            return None
        return entry

    def _serve(self, chat: ChatRequest, entry: store_pb2.CacheEntry, headers: dict[str, str]) -> Response:
        observe.served_from_cache(entry, self.prices)
        age_s = max(0, (time.time_ns() // 1_000_000 - entry.created_at_ms) // 1000)
        headers = {**headers, "x-deja-entry": entry.entry_id, "age": str(age_s)}
        if not chat.stream:
            return Response(entry.response, headers=headers, media_type="application/json")
        completion = orjson.loads(entry.response)
        return StreamingResponse(
            replay_chunks(completion, chat.include_usage),
            headers={**headers, **SSE_HEADERS},
            media_type="text/event-stream",
        )

    def _write_later(self, plan: WritePlan, chat: ChatRequest, body: bytes, completion: dict[str, Any]) -> None:
        entry = store_pb2.CacheEntry(
            api_format=API_FORMAT, model=chat.model, response=body, usage=_usage_of(completion)
        )
        # An answer that calls tools is never served semantically: it is cached for the exact request only.
        index = plan.parts is not None and not calls_tools(completion)
        self._background(self._write(plan, entry, index))

    def _background(self, work) -> None:
        """Run cache bookkeeping after the response; `drain` waits for it on shutdown."""
        task = asyncio.create_task(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _count_miss(self, scope: common_pb2.Scope) -> None:
        try:
            await self.store.count_misses(scope.tenant)
        except DependencyError as exc:
            log.debug("miss_count_failed_open", error=str(exc))

    async def _write(self, plan: WritePlan, entry: store_pb2.CacheEntry, index: bool) -> None:
        try:
            result = await self.store.put(plan.scope, plan.key, entry, plan.ttl_s)
        except DependencyError as exc:
            log.warning("exact_write_failed_open", error=str(exc))
            return
        if not result.stored:
            log.info("exact_write_skipped", reason=result.reason, size_bytes=result.size_bytes)
            return
        if index and self.semantic is not None:
            try:
                await self.semantic.remember(plan.scope, plan.parts, plan.lookup, plan.key.hex(), result.expires_at_ms)
            except DependencyError as exc:
                log.warning("semantic_write_failed_open", error=str(exc))

    # -- upstream side -----------------------------------------------------------------

    async def _fetch_from_upstream(self, chat, headers, outcome: str, plan: WritePlan | None) -> Response:
        upstream = await self.upstream.send("POST", "/chat/completions", headers, chat.raw, stream=False)
        body = upstream.content
        out_headers = {**self.upstream.response_headers(upstream), "x-deja-cache": outcome}
        if upstream.status_code != 200:
            return _upstream_error(upstream, body, out_headers)
        if plan is not None:
            try:
                completion = orjson.loads(body)
            except orjson.JSONDecodeError:
                completion = None
            if isinstance(completion, dict) and is_cacheable(completion):
                self._write_later(plan, chat, body, completion)
        return Response(body, status_code=200, headers=out_headers)

    async def _stream_from_upstream(self, chat, headers, outcome: str, plan: WritePlan | None) -> Response:
        body = chat.raw
        if not chat.include_usage:
            # Ask for usage anyway so the entry can be priced; the assembler hides it from this client.
            options = {**(chat.body.get("stream_options") or {}), "include_usage": True}
            body = orjson.dumps({**chat.body, "stream_options": options})
        upstream = await self.upstream.send("POST", "/chat/completions", headers, body, stream=True)
        out_headers = {**self.upstream.response_headers(upstream), "x-deja-cache": outcome}
        is_sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
        if upstream.status_code != 200 or not is_sse:
            try:
                body = await upstream.aread()
            except httpx.HTTPError:
                body = b""
            finally:
                await upstream.aclose()
            if upstream.status_code != 200:
                return _upstream_error(upstream, body, out_headers)
            return Response(body, status_code=200, headers=out_headers)  # not a stream: pass it on, uncached

        assembler = StreamAssembler(hide_usage=not chat.include_usage)

        async def relay():
            try:
                async for data in upstream.aiter_bytes():
                    forward = assembler.feed(data)
                    if forward:
                        yield forward
                rest = assembler.flush()
                if rest:
                    yield rest
            except httpx.HTTPError as exc:
                # Headers are gone already: tell the client in-band, the way providers do.
                log.warning("upstream_stream_broken", error=type(exc).__name__)
                yield event(
                    {
                        "error": {
                            "message": "upstream stream broke off",
                            "type": "upstream_error",
                            "param": None,
                            "code": "upstream_stream_broken",
                        }
                    }
                )
                return
            finally:
                await upstream.aclose()
            if plan is not None and assembler.done and assembler.error is None:
                completion = assembler.completion()
                if is_cacheable(completion):
                    self._write_later(plan, chat, orjson.dumps(completion), completion)

        out_headers.pop("content-type", None)
        return StreamingResponse(relay(), headers={**out_headers, **SSE_HEADERS}, media_type="text/event-stream")

    def _log(self, started: float, chat: ChatRequest, scope, outcome: str, status: int, **attributes) -> None:
        observe.finish(
            api="openai", path="/v1/chat/completions", outcome=outcome, status=status, model=chat.model,
            tenant=scope.tenant if scope else None, stream=chat.stream, access_log=self.access_log, **attributes,
        )  # fmt: skip
