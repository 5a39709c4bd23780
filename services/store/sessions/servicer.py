"""gRPC face of session memory: validates, calls SessionMemory, maps failures to status codes
(the same mapping as the exact cache: Redis down -> UNAVAILABLE, bad input -> INVALID_ARGUMENT)."""

from __future__ import annotations

import grpc

from deja.v1 import sessions_pb2, sessions_pb2_grpc
from services.store.redis_store import InvalidRequest
from services.store.servicer import _fail
from services.store.sessions.locks import SessionBusy
from services.store.sessions.memory import SessionMemory
from services.store.sessions.records import Ref

MAX_N = 1000
MAX_K = 100
MAX_QUERY_CHARS = 8192


def _bounded(value: int, low: int, high: int, name: str) -> int:
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be {low}-{high}")
    return value


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, op: str) -> None:
    if isinstance(exc, SessionBusy):
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    await _fail(context, exc, op)


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, memory: SessionMemory) -> None:
        self._memory = memory

    async def Append(self, request, context):
        try:
            done = await self._memory.append(Ref.from_proto(request.ref), list(request.messages))
        except Exception as exc:
            await _abort(context, exc, "session_append")
        return sessions_pb2.SessionAppendResponse(first_seq=done.first_seq, last_seq=done.last_seq)

    async def Get(self, request, context):
        try:
            found = await self._memory.get(Ref.from_proto(request.ref), request.after_seq)
        except Exception as exc:
            await _abort(context, exc, "session_get")
        if found is None:
            return sessions_pb2.SessionGetResponse(found=False)
        info, page, more = found
        return sessions_pb2.SessionGetResponse(found=True, info=info, messages=[m.to_proto() for m in page], more=more)

    async def Recent(self, request, context):
        try:
            messages = await self._memory.recent(Ref.from_proto(request.ref), _bounded(request.n, 1, MAX_N, "n"))
        except Exception as exc:
            await _abort(context, exc, "session_recent")
        if messages is None:
            return sessions_pb2.SessionRecentResponse(found=False)
        return sessions_pb2.SessionRecentResponse(found=True, messages=[m.to_proto() for m in messages])

    async def Context(self, request, context):
        try:
            ref = Ref.from_proto(request.ref)
            if not 1 <= len(request.query) <= MAX_QUERY_CHARS:
                raise InvalidRequest(f"query must be 1-{MAX_QUERY_CHARS} characters")
            n = _bounded(request.recent, 1, MAX_N, "recent")
            found = await self._memory.context(ref, request.query, n, _bounded(request.k, 0, MAX_K, "k"))
        except Exception as exc:
            await _abort(context, exc, "session_context")
        if found is None:
            return sessions_pb2.SessionContextResponse(found=False)
        return sessions_pb2.SessionContextResponse(
            found=True,
            recent=[m.to_proto() for m in found.recent],
            relevant=[sessions_pb2.ScoredMessage(message=m.to_proto(), score=s) for m, s in found.relevant],
            relevant_available=found.relevant_available,
        )

    async def Delete(self, request, context):
        try:
            deleted = await self._memory.delete(Ref.from_proto(request.ref))
        except Exception as exc:
            await _abort(context, exc, "session_delete")
        return sessions_pb2.SessionDeleteResponse(deleted=deleted)
