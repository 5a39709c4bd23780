"""The `/v1/sessions` endpoints (reading and deleting a session; recording and recall on the chat path
are `session_memory.py`), authenticated by the caller's API key, as a bearer token or `x-api-key`
(its tenant owns its sessions, whichever API wrote them):

    GET    /v1/sessions/{id}            the whole history, archived and hot, in order
    GET    /v1/sessions/{id}/recent?n=  the last n messages (default DEJA_SESSION_RECALL_MESSAGES)
    POST   /v1/sessions/{id}/context    {"query", "n"?, "k"?} -> recent messages + relevant archived ones
    DELETE /v1/sessions/{id}            removes it from Redis and the archive

Another tenant's session, or none, is a 404: the two are indistinguishable. The store being
down is a 503 (these endpoints have nothing to fail open to).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deja.clients import BadRequest, DependencyError
from deja.ids import SESSION_ID_RULE, is_valid_session_id
from deja.v1 import sessions_pb2
from services.gateway.body import read_body
from services.gateway.errors import ApiError
from services.gateway.identity import caller_tenant
from services.gateway.session_memory import Memory
from services.gateway.tiers import Tiers

T = TypeVar("T")

MAX_N = 1000
MAX_K = 100
DEFAULT_K = 5
MAX_QUERY_CHARS = 8192
MAX_CONTEXT_BODY = 64 * 1024


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _message(m: sessions_pb2.SessionMessage, score: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": m.seq, "role": m.role, "content": m.content, "created_at": m.created_at_ms // 1000}
    if m.truncated:
        out["truncated"] = True
    if score is not None:
        out["score"] = round(score, 4)
    return out


def _count(value: Any, name: str, low: int, high: int) -> int:
    """An integer parameter in [low, high] (query strings arrive as text, JSON bodies as numbers)."""
    # isdecimal, not isdigit ("²" is a digit int() refuses), and the stripped text goes to int():
    # strip() drops control characters such as "\x1f" that int() does not accept as space.
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}", param=name, code="invalid_value")
    return value


def _not_found(session_id: str) -> ApiError:
    return ApiError(404, f"No session found with id '{session_id}'.", param="session_id", code="session_not_found")


def session_routes(tiers: Callable[[], Tiers]) -> list[Route]:
    """`tiers` returns the running app's tiers (opened in its lifespan, after the routes exist)."""

    def memory() -> Memory:
        return tiers().memory

    async def _ref(request: Request) -> sessions_pb2.SessionRef:
        tenant = caller_tenant(request.headers)  # x-api-key or a bearer token: one key, one tenant
        session_id = request.path_params["session_id"]
        if not is_valid_session_id(session_id):
            raise ApiError(400, SESSION_ID_RULE, param="session_id", code="invalid_session_id")
        ref = sessions_pb2.SessionRef(tenant=tenant, session_id=session_id)
        await memory().settle(ref, memory().settings.timeout_ms / 1000)  # read this process's own writes
        return ref

    async def _call(work: Awaitable[T]) -> T:
        try:
            return await work
        except BadRequest as exc:
            raise ApiError(400, str(exc), code="invalid_request") from None
        except DependencyError:
            raise ApiError(503, "session memory is unavailable; try again", type="server_error",
                           code="session_store_unavailable") from None  # fmt: skip

    async def get_session(request: Request) -> Response:
        ref = await _ref(request)
        found = await _call(memory().client.get(ref))
        if found is None:
            raise _not_found(ref.session_id)
        info, messages = found
        return _json({
            "object": "session", "session_id": ref.session_id, "created_at": info.created_at_ms // 1000,
            "updated_at": info.updated_at_ms // 1000, "turns": info.turns, "messages": [_message(m) for m in messages],
        })  # fmt: skip

    async def recent(request: Request) -> Response:
        ref = await _ref(request)
        n = _count(request.query_params.get("n", memory().settings.recall_messages), "n", 1, MAX_N)
        messages = await _call(memory().client.recent(ref, n))
        if messages is None:
            raise _not_found(ref.session_id)
        return _json({"object": "list", "session_id": ref.session_id, "messages": [_message(m) for m in messages]})

    async def context(request: Request) -> Response:
        ref = await _ref(request)
        try:
            body = orjson.loads(await read_body(request, MAX_CONTEXT_BODY))
        except orjson.JSONDecodeError:
            raise ApiError(400, 'the body must be JSON: {"query": "..."}', code="invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object", code="invalid_json")
        query = body.get("query")
        if not isinstance(query, str) or not 1 <= len(query) <= MAX_QUERY_CHARS:
            raise ApiError(400, f"query must be a string of 1-{MAX_QUERY_CHARS} characters", param="query",
                           code="invalid_value")  # fmt: skip
        n = _count(body.get("n", memory().settings.recall_messages), "n", 1, MAX_N)
        k = _count(body.get("k", DEFAULT_K), "k", 0, MAX_K)
        found = await _call(memory().client.context(ref, query, recent=n, k=k))
        if not found.found:
            raise _not_found(ref.session_id)
        return _json({
            "object": "session.context", "session_id": ref.session_id,
            "recent": [_message(m) for m in found.recent],
            "relevant": [_message(s.message, s.score) for s in found.relevant],
            "relevant_available": found.relevant_available,
        })  # fmt: skip

    async def delete(request: Request) -> Response:
        ref = await _ref(request)
        if not await _call(memory().client.delete(ref)):
            raise _not_found(ref.session_id)
        return _json({"id": ref.session_id, "object": "session.deleted", "deleted": True})

    return [
        Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
        Route("/v1/sessions/{session_id}", delete, methods=["DELETE"]),
        Route("/v1/sessions/{session_id}/recent", recent, methods=["GET"]),
        Route("/v1/sessions/{session_id}/context", context, methods=["POST"]),
    ]
