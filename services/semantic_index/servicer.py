"""gRPC face of the semantic index: requests -> validated inputs -> backend; failures -> status codes.

A refused request is INVALID_ARGUMENT with the reason; an engine or server that cannot be
reached is UNAVAILABLE; anything else is INTERNAL with the operation's name only. Details stay
in the service's log, never in the reply, so callers (the gateway fails open) see no stack traces.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from prometheus_client import Gauge

from deja.logs import get_logger
from deja.v1 import semantic_index_pb2 as pb
from deja.v1 import semantic_index_pb2_grpc
from services.semantic_index.backend import (
    BackendUnavailable,
    IndexPoint,
    InvalidRequest,
    SearchQuery,
    SemanticBackend,
    check_entry_id,
    check_namespace,
    check_tenant,
)

log = get_logger("deja.semantic")

POINTS = Gauge("deja_semantic_points", "live points in the index, all tenants (refreshed every purge interval)")

MAX_INVALIDATE_IDS = 10_000


async def _fail(context: grpc.aio.ServicerContext, exc: Exception, op: str) -> None:
    if isinstance(exc, InvalidRequest):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, BackendUnavailable):
        log.warning("semantic_backend_unavailable", op=op, error=str(exc), cause=repr(exc.__cause__))
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    log.error("semantic_error", op=op, error=repr(exc))
    await context.abort(grpc.StatusCode.INTERNAL, f"semantic index: {op} failed")


class SemanticIndexServicer(semantic_index_pb2_grpc.SemanticIndexServiceServicer):
    def __init__(self, backend: SemanticBackend) -> None:
        self._backend = backend

    async def Upsert(self, request, context):
        try:
            point = IndexPoint(
                tenant=request.scope.tenant,
                namespace=request.scope.namespace,
                context_hash=request.context_hash,
                vector=request.vector,
                prompt=request.prompt,
                entry_id=request.entry_id,
                expires_at_ms=request.expires_at_ms,
                model_version=request.model_version,
            )
            await self._backend.upsert(point)
        except Exception as exc:
            await _fail(context, exc, "upsert")
        return pb.SemanticUpsertResponse()

    async def Search(self, request, context):
        try:
            query = SearchQuery(
                tenant=request.scope.tenant,
                namespace=request.scope.namespace,
                context_hash=request.context_hash,
                vector=request.vector,
                k=request.k,
                min_similarity=request.min_similarity,
                model_version=request.model_version,
            )
            hits = await self._backend.search(query)
        except Exception as exc:
            await _fail(context, exc, "search")
        return pb.SemanticSearchResponse(
            hits=[pb.SemanticHit(entry_id=h.entry_id, prompt=h.prompt, similarity=h.similarity) for h in hits]
        )

    async def Delete(self, request, context):
        try:
            tenant = check_tenant(request.scope.tenant)
            namespace = check_namespace(request.scope.namespace)
            entry_ids = [check_entry_id(entry_id) for entry_id in request.entry_ids]
            deleted = await self._backend.delete(tenant, namespace, entry_ids)
        except Exception as exc:
            await _fail(context, exc, "delete")
        return pb.SemanticDeleteResponse(deleted=deleted)

    async def DropTenant(self, request, context):
        try:
            deleted = await self._backend.drop_tenant(check_tenant(request.tenant))
        except Exception as exc:
            await _fail(context, exc, "drop_tenant")
        log.info("semantic_tenant_dropped", tenant=request.tenant, points=deleted)
        return pb.DropTenantResponse(deleted=deleted)

    async def Invalidate(self, request, context):
        try:
            tenant = check_tenant(request.tenant)
            namespace = check_namespace(request.namespace) if request.HasField("namespace") else None
            if len(request.entry_ids) > MAX_INVALIDATE_IDS:
                raise InvalidRequest(f"at most {MAX_INVALIDATE_IDS} entry_ids per call")
            entry_ids = [check_entry_id(entry_id) for entry_id in request.entry_ids]
            deleted = await self._backend.invalidate(tenant, namespace, entry_ids)
        except Exception as exc:
            await _fail(context, exc, "invalidate")
        log.info("semantic_invalidated", tenant=tenant[:12], entries=len(entry_ids), points=deleted)
        return pb.SemanticInvalidateResponse(deleted=deleted)

    async def Stats(self, request, context):
        try:
            points = await self._backend.count(check_tenant(request.tenant) if request.tenant else None)
        except Exception as exc:
            await _fail(context, exc, "stats")
        return pb.SemanticStatsResponse(points=points, backend=self._backend.name)


async def purge_periodically(backend: SemanticBackend, interval_s: float) -> None:
    """Delete expired points every interval; a failed round is logged and retried next time."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            purged = await backend.purge_expired()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("semantic_purge_failed", error=repr(exc))
            continue
        if purged:
            log.info("semantic_purged", points=purged)
        with contextlib.suppress(Exception):
            POINTS.set(await backend.count())


async def stop_task(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
