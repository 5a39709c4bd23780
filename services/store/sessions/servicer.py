"""gRPC face of session memory: bounds the request, calls SessionMemory.

Failures are raised, not mapped here: the bootstrap's one mapping (deja.grpc_errors) gives the same
answers as the exact cache (Redis down -> UNAVAILABLE, bad input -> INVALID_ARGUMENT), and a busy
session (SessionBusy) is UNAVAILABLE too.
"""

from __future__ import annotations

from deja.errors import InvalidRequest
from deja.v1 import sessions_pb2, sessions_pb2_grpc
from services.store.sessions.memory import SessionMemory
from services.store.sessions.records import Ref

MAX_N = 1000
MAX_K = 100
MAX_QUERY_CHARS = 8192


def _bounded(value: int, low: int, high: int, name: str) -> int:
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be {low}-{high}")
    return value


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, memory: SessionMemory) -> None:
        self._memory = memory

    async def Append(self, request, context):
        done = await self._memory.append(Ref.from_proto(request.ref), list(request.messages))
        return sessions_pb2.SessionAppendResponse(first_seq=done.first_seq, last_seq=done.last_seq)

    async def Get(self, request, context):
        found = await self._memory.get(Ref.from_proto(request.ref), request.after_seq)
        if found is None:
            return sessions_pb2.SessionGetResponse(found=False)
        info, page, more = found
        return sessions_pb2.SessionGetResponse(found=True, info=info, messages=[m.to_proto() for m in page], more=more)

    async def Recent(self, request, context):
        messages = await self._memory.recent(Ref.from_proto(request.ref), _bounded(request.n, 1, MAX_N, "n"))
        if messages is None:
            return sessions_pb2.SessionRecentResponse(found=False)
        return sessions_pb2.SessionRecentResponse(found=True, messages=[m.to_proto() for m in messages])

    async def Context(self, request, context):
        ref = Ref.from_proto(request.ref)
        if not 1 <= len(request.query) <= MAX_QUERY_CHARS:
            raise InvalidRequest(f"query must be 1-{MAX_QUERY_CHARS} characters")
        n = _bounded(request.recent, 1, MAX_N, "recent")
        found = await self._memory.context(ref, request.query, n, _bounded(request.k, 0, MAX_K, "k"))
        if found is None:
            return sessions_pb2.SessionContextResponse(found=False)
        return sessions_pb2.SessionContextResponse(
            found=True,
            recent=[m.to_proto() for m in found.recent],
            relevant=[sessions_pb2.ScoredMessage(message=m.to_proto(), score=s) for m, s in found.relevant],
            relevant_available=found.relevant_available,
        )

    async def Delete(self, request, context):
        deleted = await self._memory.delete(Ref.from_proto(request.ref))
        return sessions_pb2.SessionDeleteResponse(deleted=deleted)
