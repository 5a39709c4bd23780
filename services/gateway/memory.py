"""Session memory on the chat path: `X-Session-ID` records turns, `X-Deja-Memory: recall` replays them.

Around the chat handler, for a request with `X-Session-ID` and an API key (the tenant):
- recall (opt-in): the session's recent user/assistant turns are put in front of the client's
  messages (after its leading system messages) before the request is parsed, so the cache key
  and the provider both see the expanded request. The store failing or being slow costs at
  most DEJA_SESSION_RECALL_TIMEOUT_MS and the request goes on without recall.
- recording: once the answer has been sent (from the cache or the provider), the client's new
  user turn and the answer's text are appended to the session in the background. A failed or
  incomplete answer records nothing; the store being down is logged, never the client's problem.

Recordings of a session still in flight in this process are awaited before a recall or a
read of that session (bounded), so a client that sends its next turn at once sees its last one.
Without an API key there is no tenant, so the headers are ignored (the request is forwarded).
Both APIs are served (OpenAI chat completions, Anthropic Messages): a key is one tenant in both,
so one session may hold turns from either; errors come in the route's own error shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from deja.clients import CircuitBreaker, DependencyError
from deja.clients.sessions import SessionClient
from deja.endpoints import addr_setting
from deja.ids import SESSION_ID_RULE, is_valid_session_id
from deja.logs import get_logger
from deja.settings import check_addr, setting
from deja.v1 import sessions_pb2
from services.gateway.anthropic_format import ANTHROPIC
from services.gateway.anthropic_sse import MessageAssembler
from services.gateway.api_format import ApiFormat, StreamAssembly
from services.gateway.cache_policy import tenant_of
from services.gateway.chat import read_body
from services.gateway.errors import ApiError
from services.gateway.openai_format import OPENAI
from services.gateway.sse import StreamAssembler

log = get_logger("deja.gateway")

Handler = Callable[[Request], Awaitable[Response]]
RECALLED_ROLES = ("user", "assistant")


@dataclass(frozen=True)
class MemorySettings:
    store_addr: str = addr_setting("store")
    timeout_ms: int = setting(
        "DEJA_SESSION_TIMEOUT_MS", 2000, "deadline of the gateway's session calls (endpoints, recording)", minimum=1
    )
    recall_timeout_ms: int = setting(
        "DEJA_SESSION_RECALL_TIMEOUT_MS",
        200,
        "deadline of the recall lookup on the chat path; past it the request goes on without recall",
        minimum=1,
    )
    recall_messages: int = setting(
        "DEJA_SESSION_RECALL_MESSAGES",
        20,
        "messages `X-Deja-Memory: recall` puts in front of a request (and the default n of the session endpoints)",
        minimum=1,
    )

    def validate(self) -> None:
        check_addr("DEJA_STORE_ADDR", self.store_addr)


def _text(content: Any) -> str | None:
    """Message content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        texts = [p for p in parts if isinstance(p, str)]
        return "\n".join(texts) if texts else None
    return None


def _user_turn(body: dict[str, Any]) -> str | None:
    last = body["messages"][-1] if body["messages"] else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return None  # an assistant prefill or a tool result: not a new user turn
    return _text(last.get("content"))  # tool_result blocks only (Anthropic): None


class OpenAIMemory:
    """What memory needs to know of OpenAI chat completions."""

    fmt: ApiFormat = OPENAI
    user_turn = staticmethod(_user_turn)

    @staticmethod
    def answer(completion: dict[str, Any]) -> str | None:
        choices = completion.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        message = choices[0].get("message") or {}
        return _text(message.get("content")) or None  # tool calls only: nothing to remember as text

    @staticmethod
    def with_history(body: dict[str, Any], history: list[dict[str, str]]) -> bytes:
        messages = body["messages"]
        lead = 0
        while (
            lead < len(messages)
            and isinstance(messages[lead], dict)
            and messages[lead].get("role")
            in (
                "system",
                "developer",
            )
        ):
            lead += 1
        return orjson.dumps({**body, "messages": [*messages[:lead], *history, *messages[lead:]]})

    @staticmethod
    def assembler() -> StreamAssembly:
        return StreamAssembler()


class AnthropicMemory:
    """What memory needs to know of Anthropic Messages (`system` is a field, not a message)."""

    fmt: ApiFormat = ANTHROPIC
    user_turn = staticmethod(_user_turn)

    @staticmethod
    def answer(message: dict[str, Any]) -> str | None:
        return _text(message.get("content")) or None  # text blocks; thinking and tool_use are not kept

    @staticmethod
    def with_history(body: dict[str, Any], history: list[dict[str, str]]) -> bytes:
        return orjson.dumps({**body, "messages": [*history, *body["messages"]]})

    @staticmethod
    def assembler() -> StreamAssembly:
        return MessageAssembler()


MemoryApi = OpenAIMemory | AnthropicMemory
APIS: dict[str, MemoryApi] = {OPENAI.name: OpenAIMemory(), ANTHROPIC.name: AnthropicMemory()}


def _with_body(request: Request, raw: bytes) -> Request:
    """The same request carrying `raw` as its body (the original body has been read)."""
    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"content-length"]
    scope["headers"].append((b"content-length", str(len(raw)).encode()))
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await request.receive()  # then whatever the client does next (a disconnect)

    return Request(scope, receive)


def _chain(first: BackgroundTask | None, then: BackgroundTask) -> BackgroundTask:
    if first is None:
        return then
    return BackgroundTasks([first, then])


class Memory:
    def __init__(self, client: SessionClient, settings: MemorySettings, *, max_body_bytes: int) -> None:
        self.client = client
        self.settings = settings
        self.max_body_bytes = max_body_bytes
        self._pending: dict[tuple[str, str], set[asyncio.Task]] = {}

    @classmethod
    def create(cls, settings: MemorySettings, *, max_body_bytes: int) -> Memory:
        client = SessionClient(settings.store_addr, timeout_s=settings.timeout_ms / 1000, breaker=CircuitBreaker())
        return cls(client, settings, max_body_bytes=max_body_bytes)

    async def close(self, timeout_s: float = 5.0) -> None:
        tasks = [t for pending in self._pending.values() for t in pending]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        await self.client.close()

    # -- the chat path -----------------------------------------------------------------------

    async def around(self, request: Request, handler: Handler, fmt: ApiFormat = OPENAI) -> Response:
        """Run `handler` (the route's cache pipeline) with this request's memory headers applied."""
        api = APIS[fmt.name]
        try:
            return await self._around(request, handler, api)
        except ApiError as exc:
            return fmt.error_response(exc)

    async def _around(self, request: Request, handler: Handler, api: MemoryApi) -> Response:
        session_id = request.headers.get("x-session-id")
        mode = request.headers.get("x-deja-memory")
        if session_id is None:
            if mode is not None:
                raise ApiError(400, "X-Deja-Memory needs an X-Session-ID header", param="X-Deja-Memory",
                               code="missing_session_id")  # fmt: skip
            return await handler(request)
        if not is_valid_session_id(session_id):
            raise ApiError(400, f"X-Session-ID: {SESSION_ID_RULE}", param="X-Session-ID", code="invalid_session_id")
        if mode is not None and mode.strip().lower() != "recall":
            raise ApiError(400, "X-Deja-Memory: the only mode is 'recall'", param="X-Deja-Memory",
                           code="invalid_memory_mode")  # fmt: skip
        api_key = api.fmt.api_key(request.headers)
        if api_key is None:
            return await handler(request)  # no tenant: nothing to record into or recall from
        ref = sessions_pb2.SessionRef(tenant=tenant_of(api_key), session_id=session_id)

        started_ms = time.time_ns() // 1_000_000
        raw = await read_body(request, self.max_body_bytes)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return await handler(_with_body(request, raw))  # the handler answers the 400
        user_turn = api.user_turn(body)

        memory_header = None
        if mode is not None:
            raw, memory_header = await self._recall(ref, body, raw, api)
        response = await handler(_with_body(request, raw))
        if memory_header:
            response.headers["x-deja-memory"] = memory_header
        if response.status_code == 200 and user_turn is not None:
            user = sessions_pb2.SessionMessage(role="user", content=user_turn, created_at_ms=started_ms)
            self._record_after(response, ref, user, api)
        return response

    async def _recall(
        self, ref: sessions_pb2.SessionRef, body: dict[str, Any], raw: bytes, api: MemoryApi
    ) -> tuple[bytes, str]:
        """The body with the session's recent turns in front, and the X-Deja-Memory response header."""
        await self.settle(ref, self.settings.recall_timeout_ms / 1000)
        try:
            recent = await self.client.recent(
                ref, self.settings.recall_messages, timeout_s=self.settings.recall_timeout_ms / 1000
            )
        except DependencyError as exc:
            log.warning("session_recall_failed_open", error=str(exc))
            return raw, "unavailable"
        history = [{"role": m.role, "content": m.content} for m in recent or () if m.role in RECALLED_ROLES]
        while history:
            if history[0]["role"] != "user":  # recalled history starts with a question (Anthropic requires it)
                history = history[1:]
                continue
            expanded = api.with_history(body, history)
            if len(expanded) <= self.max_body_bytes:
                return expanded, f"recalled={len(history)}"
            history = history[1:]  # over the body limit: the oldest turns go first
        return raw, "recalled=0"

    def _record_after(
        self, response: Response, ref: sessions_pb2.SessionRef, user: sessions_pb2.SessionMessage, api: MemoryApi
    ) -> None:
        def record(completion: dict[str, Any] | None) -> None:
            answer = api.answer(completion) if isinstance(completion, dict) else None
            if answer is not None:
                now = time.time_ns() // 1_000_000
                reply = sessions_pb2.SessionMessage(role="assistant", content=answer, created_at_ms=now)
                self._spawn(ref, [user, reply])

        if isinstance(response, StreamingResponse):
            # Recorded as the stream ends, from the bytes the client got (cache replay or provider).
            assembler, stream = api.assembler(), response.body_iterator

            async def tee():
                async for chunk in stream:
                    assembler.feed(chunk if isinstance(chunk, bytes) else chunk.encode())
                    yield chunk
                if assembler.done and assembler.error is None:
                    record(assembler.completion())

            response.body_iterator = tee()
            return

        async def after_sent() -> None:
            try:
                record(orjson.loads(response.body))
            except orjson.JSONDecodeError:
                pass

        response.background = _chain(response.background, BackgroundTask(after_sent))

    def _spawn(self, ref: sessions_pb2.SessionRef, messages: list[sessions_pb2.SessionMessage]) -> None:
        key = (ref.tenant, ref.session_id)
        task = asyncio.create_task(self._append(ref, messages))
        self._pending.setdefault(key, set()).add(task)

        def done(_task: asyncio.Task) -> None:
            pending = self._pending.get(key)
            if pending is not None:
                pending.discard(task)
                if not pending:
                    del self._pending[key]

        task.add_done_callback(done)

    async def _append(self, ref: sessions_pb2.SessionRef, messages: list[sessions_pb2.SessionMessage]) -> None:
        try:
            await self.client.append(ref, messages)
        except DependencyError as exc:
            log.warning("session_record_failed_open", error=str(exc))

    async def settle(self, ref: sessions_pb2.SessionRef, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for this process's recordings of the session still in flight."""
        pending = self._pending.get((ref.tenant, ref.session_id))
        if pending:
            await asyncio.wait(list(pending), timeout=timeout_s)
