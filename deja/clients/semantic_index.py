"""Typed client of the semantic index service (L2)."""

from __future__ import annotations

from collections.abc import Sequence

from deja.clients.base import CircuitBreaker, GrpcClient
from deja.v1 import common_pb2, semantic_index_pb2, semantic_index_pb2_grpc


class SemanticIndexClient(GrpcClient):
    SERVICE = semantic_index_pb2.DESCRIPTOR.services_by_name["SemanticIndexService"].full_name

    def __init__(self, addr: str, *, timeout_s: float, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(addr, timeout_s=timeout_s, breaker=breaker)
        self._stub = semantic_index_pb2_grpc.SemanticIndexServiceStub(self.channel)

    async def upsert(
        self, scope: common_pb2.Scope, context_hash: bytes, vector: Sequence[float], prompt: str, entry_id: str,
        expires_at_ms: int, model_version: str, timeout_s: float | None = None,
    ) -> None:  # fmt: skip
        request = semantic_index_pb2.SemanticUpsertRequest(
            scope=scope, context_hash=context_hash, vector=vector, prompt=prompt, entry_id=entry_id,
            expires_at_ms=expires_at_ms, model_version=model_version,
        )  # fmt: skip
        await self.call(self._stub.Upsert, request, timeout_s)

    async def search(
        self, scope: common_pb2.Scope, context_hash: bytes, vector: Sequence[float], *, k: int,
        min_similarity: float, model_version: str,
    ) -> list[semantic_index_pb2.SemanticHit]:  # fmt: skip
        request = semantic_index_pb2.SemanticSearchRequest(
            scope=scope, context_hash=context_hash, vector=vector, k=k, min_similarity=min_similarity,
            model_version=model_version,
        )  # fmt: skip
        return list((await self.call(self._stub.Search, request)).hits)

    async def delete(self, scope: common_pb2.Scope, entry_ids: list[str]) -> int:
        request = semantic_index_pb2.SemanticDeleteRequest(scope=scope, entry_ids=entry_ids)
        return (await self.call(self._stub.Delete, request)).deleted

    async def drop_tenant(self, tenant: str) -> int:
        return (await self.call(self._stub.DropTenant, semantic_index_pb2.DropTenantRequest(tenant=tenant))).deleted

    async def stats(self, tenant: str = "") -> semantic_index_pb2.SemanticStatsResponse:
        return await self.call(self._stub.Stats, semantic_index_pb2.SemanticStatsRequest(tenant=tenant))

    async def invalidate(self, tenant: str, namespace: str | None = None, entry_ids: Sequence[str] = ()) -> int:
        """Delete the tenant's points of these entries (empty: all) in this namespace (None: every one)."""
        request = semantic_index_pb2.SemanticInvalidateRequest(tenant=tenant, namespace=namespace, entry_ids=entry_ids)
        return (await self.call(self._stub.Invalidate, request)).deleted
