"""Typed client of the verifier service (L3)."""

from __future__ import annotations

from deja.clients.base import CircuitBreaker, GrpcClient
from deja.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc


class VerifierClient(GrpcClient):
    SERVICE = verifier_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name

    def __init__(self, addr: str, *, timeout_s: float, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(addr, timeout_s=timeout_s, breaker=breaker)
        self._stub = verifier_pb2_grpc.VerifierServiceStub(self.channel)

    async def verify(self, query: str, candidates: list[verifier_pb2.VerifyCandidate]) -> list[float]:
        """P(same intent) for each candidate, in the candidates' order."""
        reply = await self.call(self._stub.Verify, verifier_pb2.VerifyRequest(query=query, candidates=candidates))
        return [v.probability for v in reply.verdicts]

    async def info(self) -> common_pb2.ModelInfo:
        return await self.call(self._stub.Info, common_pb2.InfoRequest())
