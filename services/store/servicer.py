"""gRPC face of the exact cache: validates, calls RedisExactStore, maps failures to status codes.

Redis being down or slow becomes UNAVAILABLE / DEADLINE_EXCEEDED, which the gateway treats
as a miss (fail open); a malformed request becomes INVALID_ARGUMENT.
"""

from __future__ import annotations

import grpc
import redis.exceptions

from deja.logs import get_logger
from deja.v1 import store_pb2, store_pb2_grpc
from services.store.entries import EntryAdmin, InvalidFilter
from services.store.observations import InvalidObservation, ObservationLog
from services.store.redis_store import InvalidRequest, RedisExactStore

log = get_logger("deja.store")


async def _fail(context: grpc.aio.ServicerContext, exc: Exception, op: str) -> None:
    if isinstance(exc, InvalidRequest | InvalidFilter | InvalidObservation):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, redis.exceptions.TimeoutError):
        log.warning("redis_timeout", op=op)
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "redis timed out")
    if isinstance(exc, redis.exceptions.ConnectionError):
        log.warning("redis_unavailable", op=op, error=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "redis unavailable")
    log.error("store_error", op=op, error=repr(exc))
    await context.abort(grpc.StatusCode.INTERNAL, f"{op} failed")


class StoreServicer(store_pb2_grpc.StoreServiceServicer):
    def __init__(self, store: RedisExactStore, observations: ObservationLog | None = None) -> None:
        self._store = store
        self._entries = EntryAdmin(store)
        self._observations = observations or ObservationLog(store.redis, max_kept=5000)

    async def Get(self, request, context):
        try:
            entry = await self._store.get(request.scope, request.key, request.count_hit_as)
        except Exception as exc:
            await _fail(context, exc, "get")
        if entry is None:
            return store_pb2.StoreGetResponse(found=False)
        return store_pb2.StoreGetResponse(found=True, entry=entry)

    async def Put(self, request, context):
        try:
            result = await self._store.put(request.scope, request.key, request.entry, request.ttl_seconds)
        except Exception as exc:
            await _fail(context, exc, "put")
        return store_pb2.StorePutResponse(
            stored=result.stored,
            reason=result.reason,
            expires_at_ms=result.expires_at_ms,
            size_bytes=result.size_bytes,
        )

    async def Delete(self, request, context):
        try:
            deleted = await self._store.delete(request.scope, request.key)
        except Exception as exc:
            await _fail(context, exc, "delete")
        return store_pb2.StoreDeleteResponse(deleted=deleted)

    async def Stats(self, request, context):
        try:
            stats = await self._store.stats(request.tenant)
            for name, value in (await self._observations.counters(request.tenant)).items():
                setattr(stats, name, value)
        except Exception as exc:
            await _fail(context, exc, "stats")
        return store_pb2.StoreStatsResponse(stats=stats)

    async def CountMisses(self, request, context):
        if not 1 <= request.misses <= 1_000_000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "misses must be between 1 and 1000000")
        try:
            await self._store.count_misses(request.tenant, request.misses)
        except Exception as exc:
            await _fail(context, exc, "count_misses")
        return store_pb2.StoreCountMissesResponse()

    # -- administration and feedback ----------------------------------------------------

    async def ListEntries(self, request, context):
        try:
            return await self._entries.list(request.filter, request.limit)
        except Exception as exc:
            await _fail(context, exc, "list_entries")

    async def Invalidate(self, request, context):
        try:
            entries = await self._entries.invalidate(request.filter, request.dry_run)
        except Exception as exc:
            await _fail(context, exc, "invalidate")
        if not request.dry_run:
            tenants = sorted({e.tenant for e in entries})
            log.info("entries_invalidated", entries=len(entries), tenants=[t[:12] for t in tenants][:20])
        return store_pb2.StoreInvalidateResponse(entries=entries)

    async def RecordFeedback(self, request, context):
        try:
            await self._entries.record_feedback(request.tenant, request.entry_id, request.correct)
        except Exception as exc:
            await _fail(context, exc, "record_feedback")
        return store_pb2.StoreFeedbackResponse()

    # -- the error budget's evidence ------------------------------------------------------

    async def RecordObservation(self, request, context):
        observation = request.observation if request.HasField("observation") else None
        try:
            await self._observations.record(request.tenant, observation, dict(request.counters))
        except Exception as exc:
            await _fail(context, exc, "record_observation")
        return store_pb2.StoreObservationResponse()

    async def ListObservations(self, request, context):
        try:
            observations = await self._observations.list(request.tenant, request.limit)
        except Exception as exc:
            await _fail(context, exc, "list_observations")
        return store_pb2.StoreListObservationsResponse(observations=observations)
