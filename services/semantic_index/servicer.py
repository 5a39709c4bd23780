"""gRPC face of the semantic index: requests -> validated inputs -> backend.

Failures are raised, not mapped here: the bootstrap's one mapping (deja.grpc_errors) answers a
refused request (InvalidRequest) with INVALID_ARGUMENT and its reason, an engine or server that
cannot be reached (BackendUnavailable) with UNAVAILABLE, and anything else with INTERNAL naming the
operation only. Details stay in the service's log, never in the reply, so callers (the gateway
fails open) see no stack traces.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Gauge

from deja.logs import get_logger
from deja.v1 import semantic_index_pb2 as pb
from deja.v1 import semantic_index_pb2_grpc
from services.semantic_index.backend import (
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


def _scoped(request) -> dict:
    """The fields an upsert and a search both name the same way."""
    scope = request.scope
    return {
        "tenant": scope.tenant,
        "namespace": scope.namespace,
        "context_hash": request.context_hash,
        "vector": request.vector,
        "model_version": request.model_version,
    }


class SemanticIndexServicer(semantic_index_pb2_grpc.SemanticIndexServiceServicer):
    def __init__(self, backend: SemanticBackend) -> None:
        self._backend = backend

    async def Upsert(self, request, context):
        point = IndexPoint(
            **_scoped(request), prompt=request.prompt, entry_id=request.entry_id, expires_at_ms=request.expires_at_ms
        )
        await self._backend.upsert(point)
        return pb.SemanticUpsertResponse()

    async def Search(self, request, context):
        query = SearchQuery(**_scoped(request), k=request.k, min_similarity=request.min_similarity)
        hits = await self._backend.search(query)
        return pb.SemanticSearchResponse(
            hits=[pb.SemanticHit(entry_id=h.entry_id, prompt=h.prompt, similarity=h.similarity) for h in hits]
        )

    async def Delete(self, request, context):
        tenant = check_tenant(request.scope.tenant)
        namespace = check_namespace(request.scope.namespace)
        entry_ids = [check_entry_id(entry_id) for entry_id in request.entry_ids]
        deleted = await self._backend.delete(tenant, namespace, entry_ids)
        return pb.SemanticDeleteResponse(deleted=deleted)

    async def DropTenant(self, request, context):
        deleted = await self._backend.drop_tenant(check_tenant(request.tenant))
        log.info("semantic_tenant_dropped", tenant=request.tenant, points=deleted)
        return pb.DropTenantResponse(deleted=deleted)

    async def Invalidate(self, request, context):
        tenant = check_tenant(request.tenant)
        namespace = check_namespace(request.namespace) if request.HasField("namespace") else None
        if len(request.entry_ids) > MAX_INVALIDATE_IDS:
            raise InvalidRequest(f"at most {MAX_INVALIDATE_IDS} entry_ids per call")
        entry_ids = [check_entry_id(entry_id) for entry_id in request.entry_ids]
        deleted = await self._backend.invalidate(tenant, namespace, entry_ids)
        log.info("semantic_invalidated", tenant=tenant[:12], entries=len(entry_ids), points=deleted)
        return pb.SemanticInvalidateResponse(deleted=deleted)

    async def Stats(self, request, context):
        points = await self._backend.count(check_tenant(request.tenant) if request.tenant else None)
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
