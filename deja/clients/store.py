"""Typed client of the store service (L1 exact cache); its reads may skip the service (`direct`)."""

from __future__ import annotations

from deja.clients.base import CircuitBreaker, GrpcClient
from deja.clients.direct_reads import DirectReads
from deja.v1 import common_pb2, store_pb2, store_pb2_grpc


class StoreClient(GrpcClient):
    SERVICE = store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name

    def __init__(
        self, addr: str, *, timeout_s: float, breaker: CircuitBreaker | None = None, direct: DirectReads | None = None
    ) -> None:
        super().__init__(addr, timeout_s=timeout_s, breaker=breaker)
        self._stub = store_pb2_grpc.StoreServiceStub(self.channel)
        self.direct = direct  # Get straight from the store's Redis (deja.clients.direct_reads); None: over gRPC

    async def get(
        self, scope: common_pb2.Scope, key: bytes, count_hit_as: int = store_pb2.TIER_UNSPECIFIED
    ) -> store_pb2.CacheEntry | None:
        """The entry, or None. `count_hit_as`: the tier a found entry is counted under in the tenant's stats."""
        if self.direct is not None:
            return await self.direct.get(scope, key, count_hit_as, self.delete)
        request = store_pb2.StoreGetRequest(scope=scope, key=key, count_hit_as=count_hit_as)
        reply = await self.call(self._stub.Get, request)
        return reply.entry if reply.found else None

    async def serving(self, service: str = "", timeout_s: float = 0.5) -> bool:
        """The service's health check and, with direct reads, Redis answering the gateway itself."""
        up = await super().serving(service, timeout_s)
        if up and self.direct is not None:
            up = await self.direct.serving(timeout_s)
        return up

    async def close(self) -> None:
        if self.direct is not None:
            await self.direct.close()
        await super().close()

    async def put(
        self, scope: common_pb2.Scope, key: bytes, entry: store_pb2.CacheEntry, ttl_s: int = 0
    ) -> store_pb2.StorePutResponse:
        request = store_pb2.StorePutRequest(scope=scope, key=key, entry=entry, ttl_seconds=ttl_s)
        return await self.call(self._stub.Put, request)

    async def delete(self, scope: common_pb2.Scope, key: bytes) -> bool:
        reply = await self.call(self._stub.Delete, store_pb2.StoreDeleteRequest(scope=scope, key=key))
        return reply.deleted

    async def stats(self, tenant: str) -> store_pb2.TenantStats:
        reply = await self.call(self._stub.Stats, store_pb2.StoreStatsRequest(tenant=tenant))
        return reply.stats

    async def count_misses(self, tenant: str, misses: int = 1) -> None:
        await self.call(self._stub.CountMisses, store_pb2.StoreCountMissesRequest(tenant=tenant, misses=misses))

    async def list_entries(self, entry_filter: store_pb2.EntryFilter, limit: int = 0) -> store_pb2.StoreListResponse:
        return await self.call(self._stub.ListEntries, store_pb2.StoreListRequest(filter=entry_filter, limit=limit))

    async def invalidate(self, entry_filter: store_pb2.EntryFilter, dry_run: bool = False) -> list[store_pb2.EntryInfo]:
        """Delete the matching entries; returns them (with dry_run: only returns them)."""
        request = store_pb2.StoreInvalidateRequest(filter=entry_filter, dry_run=dry_run)
        return list((await self.call(self._stub.Invalidate, request)).entries)

    async def record_feedback(self, tenant: str, entry_id: str, correct: bool) -> None:
        request = store_pb2.StoreFeedbackRequest(tenant=tenant, entry_id=entry_id, correct=correct)
        await self.call(self._stub.RecordFeedback, request)

    async def record_observation(
        self, tenant: str, observation: store_pb2.Observation | None, counters: dict[str, int] | None = None
    ) -> None:
        request = store_pb2.StoreObservationRequest(tenant=tenant, observation=observation, counters=counters or {})
        await self.call(self._stub.RecordObservation, request)

    async def list_observations(self, tenant: str, limit: int = 0) -> list[store_pb2.Observation]:
        request = store_pb2.StoreListObservationsRequest(tenant=tenant, limit=limit)
        return list((await self.call(self._stub.ListObservations, request)).observations)
