"""Typed client of the session memory service (served by the store process)."""

from __future__ import annotations

from collections.abc import Sequence

from deja.clients.base import CircuitBreaker, GrpcClient
from deja.v1 import sessions_pb2, sessions_pb2_grpc


class SessionClient(GrpcClient):
    SERVICE = sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name

    def __init__(self, addr: str, *, timeout_s: float, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(addr, timeout_s=timeout_s, breaker=breaker)
        self._stub = sessions_pb2_grpc.SessionServiceStub(self.channel)

    async def append(
        self,
        ref: sessions_pb2.SessionRef,
        messages: Sequence[sessions_pb2.SessionMessage],
        timeout_s: float | None = None,
    ) -> sessions_pb2.SessionAppendResponse:
        request = sessions_pb2.SessionAppendRequest(ref=ref, messages=messages)
        return await self.call(self._stub.Append, request, timeout_s)

    async def get(
        self, ref: sessions_pb2.SessionRef
    ) -> tuple[sessions_pb2.SessionInfo, list[sessions_pb2.SessionMessage]] | None:
        """The whole history (every page), or None if the tenant has no such session."""
        messages: list[sessions_pb2.SessionMessage] = []
        after = 0
        while True:
            reply = await self.call(self._stub.Get, sessions_pb2.SessionGetRequest(ref=ref, after_seq=after))
            if not reply.found:
                return None
            messages.extend(reply.messages)
            if not reply.more or not reply.messages:
                return reply.info, messages
            after = reply.messages[-1].seq

    async def recent(
        self, ref: sessions_pb2.SessionRef, n: int, timeout_s: float | None = None
    ) -> list[sessions_pb2.SessionMessage] | None:
        reply = await self.call(self._stub.Recent, sessions_pb2.SessionRecentRequest(ref=ref, n=n), timeout_s)
        return list(reply.messages) if reply.found else None

    async def context(
        self, ref: sessions_pb2.SessionRef, query: str, *, recent: int, k: int
    ) -> sessions_pb2.SessionContextResponse:
        request = sessions_pb2.SessionContextRequest(ref=ref, query=query, recent=recent, k=k)
        return await self.call(self._stub.Context, request)

    async def delete(self, ref: sessions_pb2.SessionRef) -> bool:
        return (await self.call(self._stub.Delete, sessions_pb2.SessionDeleteRequest(ref=ref))).deleted
