"""gRPC face of the exact cache: calls RedisExactStore and the entry/observation logs.

Failures are raised, not mapped here: the bootstrap's one mapping (deja.grpc_errors) turns Redis
being down or slow into UNAVAILABLE / DEADLINE_EXCEEDED, which the gateway treats as a miss (fail
open), and a malformed request (InvalidRequest and its kinds) into INVALID_ARGUMENT.
"""

from __future__ import annotations

from deja.errors import InvalidRequest
from deja.logs import get_logger
from deja.v1 import store_pb2, store_pb2_grpc
from services.store.entries import EntryAdmin
from services.store.observations import ObservationLog
from services.store.redis_store import RedisExactStore

log = get_logger("deja.store")


class StoreServicer(store_pb2_grpc.StoreServiceServicer):
    def __init__(self, store: RedisExactStore, observations: ObservationLog | None = None) -> None:
        self._store = store
        self._entries = EntryAdmin(store)
        self._observations = observations or ObservationLog(store.redis, max_kept=5000)

    async def Get(self, request, context):
        entry = await self._store.get(request.scope, request.key, request.count_hit_as)
        if entry is None:
            return store_pb2.StoreGetResponse(found=False)
        return store_pb2.StoreGetResponse(found=True, entry=entry)

    async def Put(self, request, context):
        result = await self._store.put(request.scope, request.key, request.entry, request.ttl_seconds)
        return store_pb2.StorePutResponse(
            stored=result.stored,
            reason=result.reason,
            expires_at_ms=result.expires_at_ms,
            size_bytes=result.size_bytes,
        )

    async def Delete(self, request, context):
        return store_pb2.StoreDeleteResponse(deleted=await self._store.delete(request.scope, request.key))

    async def Stats(self, request, context):
        stats = await self._store.stats(request.tenant)
        for name, value in (await self._observations.counters(request.tenant)).items():
            setattr(stats, name, value)
        return store_pb2.StoreStatsResponse(stats=stats)

    async def CountMisses(self, request, context):
        if not 1 <= request.misses <= 1_000_000:
            raise InvalidRequest("misses must be between 1 and 1000000")
        await self._store.count_misses(request.tenant, request.misses)
        return store_pb2.StoreCountMissesResponse()

    # -- administration and feedback ----------------------------------------------------

    async def ListEntries(self, request, context):
        return await self._entries.list(request.filter, request.limit)

    async def Invalidate(self, request, context):
        entries = await self._entries.invalidate(request.filter, request.dry_run)
        if not request.dry_run:
            tenants = sorted({e.tenant for e in entries})
            log.info("entries_invalidated", entries=len(entries), tenants=[t[:12] for t in tenants][:20])
        return store_pb2.StoreInvalidateResponse(entries=entries)

    async def RecordFeedback(self, request, context):
        await self._entries.record_feedback(request.tenant, request.entry_id, request.correct)
        return store_pb2.StoreFeedbackResponse()

    # -- the error budget's evidence ------------------------------------------------------

    async def RecordObservation(self, request, context):
        observation = request.observation if request.HasField("observation") else None
        await self._observations.record(request.tenant, observation, dict(request.counters))
        return store_pb2.StoreObservationResponse()

    async def ListObservations(self, request, context):
        observations = await self._observations.list(request.tenant, request.limit)
        return store_pb2.StoreListObservationsResponse(observations=observations)
