"""Session memory, a step of the chat pipeline: `X-Session-ID` records turns, `X-Deja-Memory: recall`
replays them. (The `/v1/sessions` endpoints that read and delete sessions are `session_api.py`.)

For a request with `X-Session-ID` and an API key (the tenant), the pipeline (`pipeline.py`):
- opens a `SessionTurn` before anything else, so bad memory headers are a 400 first;
- recall (opt-in): once the body is parsed and before it is keyed, the session's recent
  user/assistant turns are put in front of the client's messages (the format's `with_history`),
  so the cache key and the provider both see the expanded request. The store failing or being
  slow costs at most DEJA_SESSION_RECALL_TIMEOUT_MS and the request goes on without recall;
- recording: once the answer has been sent (from the cache or the provider), the client's new user
  turn and the answer's text are appended to the session in the background, from the answer the
  pipeline already holds (a stream is assembled once, by the pipeline). A failed or incomplete
  answer records nothing; the store being down is logged, never the client's problem.

Recordings of a session still in flight in this process are awaited before a recall or a
read of that session (bounded), so a client that sends its next turn at once sees its last one.
Without an API key there is no tenant, so the headers are ignored (the request is forwarded).
Both APIs are served: a key is one tenant in both, so one session may hold turns from either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from starlette.background import BackgroundTask, BackgroundTasks
from starlette.responses import Response

from deja.clients import CircuitBreaker, DependencyError, failed_open
from deja.clients.sessions import SessionClient
from deja.ids import SESSION_ID_RULE, is_valid_session_id
from deja.logs import get_logger
from deja.v1 import sessions_pb2
from services.gateway.api_format import ApiFormat, CacheableRequest, message_text
from services.gateway.errors import ApiError
from services.gateway.identity import tenant_of
from services.gateway.settings import MemorySettings

log = get_logger("deja.gateway")

RECALLED_ROLES = ("user", "assistant")


def user_turn(body: dict[str, Any]) -> str | None:
    """The client's new user turn as text (None: an assistant prefill, a tool result, no text)."""
    last = body["messages"][-1] if body["messages"] else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    return message_text(last.get("content"))  # tool_result blocks only (Anthropic): None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SessionTurn:
    """One chat request's part in its session: what to recall before keying, what to record after."""

    def __init__(self, memory: Memory, ref: sessions_pb2.SessionRef, fmt: ApiFormat, recall: bool) -> None:
        self.memory = memory
        self.ref = ref
        self.fmt = fmt
        self.wants_recall = recall
        self.started_ms = _now_ms()
        self.user: str | None = None  # the client's new user turn, set when the request is parsed
        self.header: str | None = None  # X-Deja-Memory of the response, once recall ran
        self.answer: dict[str, Any] | None = None  # a whole answer in hand (JSON, or a cached one replayed)

    async def recall(self, request: CacheableRequest) -> CacheableRequest:
        """The parsed request, with the session's recent turns in front when the client asked for them."""
        self.user = user_turn(request.body)
        if not self.wants_recall:
            return request
        request, self.header = await self.memory.recall(self.ref, request, self.fmt)
        return request

    def record(self, answer: dict[str, Any] | None) -> None:
        """Append the user turn and the answer's text (a complete answer, already sent) to the session."""
        text = self.fmt.answer_text(answer) if isinstance(answer, dict) else None
        if self.user is None or text is None:
            return
        user = sessions_pb2.SessionMessage(role="user", content=self.user, created_at_ms=self.started_ms)
        reply = sessions_pb2.SessionMessage(role="assistant", content=text, created_at_ms=_now_ms())
        self.memory.spawn(self.ref, [user, reply])

    async def _after_sent(self, answer: dict[str, Any]) -> None:
        self.record(answer)  # async: a sync background task would run in a worker thread, off the event loop

    def finish(self, response: Response) -> None:
        """Before the response goes out: its X-Deja-Memory header, and the recording of a whole answer
        once it has been sent (a live stream records itself as it ends, see pipeline.py)."""
        if self.header:
            response.headers["x-deja-memory"] = self.header
        if response.status_code == 200 and self.answer is not None:
            then = BackgroundTask(self._after_sent, self.answer)
            response.background = then if response.background is None else BackgroundTasks([response.background, then])


class Memory:
    def __init__(self, client: SessionClient, settings: MemorySettings, *, max_body_bytes: int) -> None:
        self.client = client
        self.settings = settings
        self.max_body_bytes = max_body_bytes
        self._pending: dict[tuple[str, str], set[asyncio.Task]] = {}

    @classmethod
    def create(cls, settings: MemorySettings, store_addr: str, *, max_body_bytes: int) -> Memory:
        client = SessionClient(store_addr, timeout_s=settings.timeout_ms / 1000, breaker=CircuitBreaker())
        return cls(client, settings, max_body_bytes=max_body_bytes)

    async def close(self, timeout_s: float = 5.0) -> None:
        tasks = [t for pending in self._pending.values() for t in pending]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        await self.client.close()

    # -- the chat path -----------------------------------------------------------------------

    def turn(self, headers: Mapping[str, str], api_key: str | None, fmt: ApiFormat) -> SessionTurn | None:
        """This request's session turn (None: no X-Session-ID, or no key and so no tenant); 400 on bad headers."""
        session_id = headers.get("x-session-id")
        mode = headers.get("x-deja-memory")
        if session_id is None:
            if mode is not None:
                raise ApiError(400, "X-Deja-Memory needs an X-Session-ID header", param="X-Deja-Memory",
                               code="missing_session_id")  # fmt: skip
            return None
        if not is_valid_session_id(session_id):
            raise ApiError(400, f"X-Session-ID: {SESSION_ID_RULE}", param="X-Session-ID", code="invalid_session_id")
        if mode is not None and mode.strip().lower() != "recall":
            raise ApiError(400, "X-Deja-Memory: the only mode is 'recall'", param="X-Deja-Memory",
                           code="invalid_memory_mode")  # fmt: skip
        if api_key is None:
            return None  # no tenant: nothing to record into or recall from
        ref = sessions_pb2.SessionRef(tenant=tenant_of(api_key), session_id=session_id)
        return SessionTurn(self, ref, fmt, recall=mode is not None)

    async def recall(
        self, ref: sessions_pb2.SessionRef, request: CacheableRequest, fmt: ApiFormat
    ) -> tuple[CacheableRequest, str]:
        """The request with the session's recent turns in front, and the X-Deja-Memory response header."""
        await self.settle(ref, self.settings.recall_timeout_ms / 1000)
        try:
            recent = await self.client.recent(
                ref, self.settings.recall_messages, timeout_s=self.settings.recall_timeout_ms / 1000
            )
        except DependencyError as exc:
            failed_open(log, "session_recall_failed_open", exc)
            return request, "unavailable"
        history = [{"role": m.role, "content": m.content} for m in recent or () if m.role in RECALLED_ROLES]
        while history:
            if history[0]["role"] != "user":  # recalled history starts with a question (Anthropic requires it)
                history = history[1:]
                continue
            expanded = fmt.with_history(request, history)
            if len(expanded.raw) <= self.max_body_bytes:
                return expanded, f"recalled={len(history)}"
            history = history[1:]  # over the body limit: the oldest turns go first
        return request, "recalled=0"

    def spawn(self, ref: sessions_pb2.SessionRef, messages: list[sessions_pb2.SessionMessage]) -> None:
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
            failed_open(log, "session_record_failed_open", exc)

    async def settle(self, ref: sessions_pb2.SessionRef, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for this process's recordings of the session still in flight."""
        pending = self._pending.get((ref.tenant, ref.session_id))
        if pending:
            await asyncio.wait(list(pending), timeout=timeout_s)
