"""Correcting what is cached: list, invalidate (exact and semantic tiers together), feedback, stats.

Shared by the admin API (`admin.py`, any tenant, admin key) and the tenants' own endpoints
(`tenant.py`, the caller's tenant only): the operations, and the checks and JSON shapes both use.

The store is the source of truth: entries are selected and deleted there first, then their
points are deleted from the semantic index. A
semantic point whose entry is gone can never serve an answer (a semantic hit is fetched from
the store, and a missing entry deletes the point), so an index that is down when an entry is
invalidated leaves garbage, never a stale answer.

These calls use their own clients with operator-sized deadlines and breakers, so an admin
sweep never trips the circuit breakers of the request path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deja.clients import BadRequest, DependencyError, SemanticIndexClient, StoreClient
from deja.ids import NAMESPACE_RULE, is_valid_entry_id, is_valid_namespace, is_valid_tenant
from deja.logs import get_logger
from deja.v1 import store_pb2
from services.gateway.cache_api.stats import stats_json
from services.gateway.errors import ApiError
from services.gateway.evidence import EvidenceBook

log = get_logger("deja.gateway.admin")

MAX_IDS = 1000
MAX_TEXT = 1000
SEMANTIC_BATCH = 5000


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def unavailable(what: str) -> ApiError:
    return ApiError(503, f"{what} is unavailable right now; nothing was changed", type="server_error",
                    code="cache_unavailable")  # fmt: skip


def check_entry_id(value: Any, where: str = "entry_id") -> str:
    if not isinstance(value, str) or not is_valid_entry_id(value):
        raise bad(f"'{where}' must be an entry id: 64 lowercase hex characters (the X-Deja-Entry header)", where)
    return value


def check_tenant(value: Any, where: str = "tenant") -> str:
    if not isinstance(value, str) or not is_valid_tenant(value):
        raise bad(f"'{where}' must be a tenant id (hex blake3 of the API key)", where)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise bad(f"'{where}' must be a string of 1-{MAX_TEXT} characters", where)
    return value


def check_namespace(namespace: str, where: str) -> str:
    """The X-Deja-Namespace rule, for namespaces named in a request body or query."""
    if not is_valid_namespace(namespace):
        raise ApiError(400, f"'{where}' must be {NAMESPACE_RULE}", param=where, code="invalid_value")
    return namespace


def no_unknown(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad(f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})", unknown[0])


# What an entry can be selected by, for tenants and admins alike (plus entry ids, and tenants for admins).
FILTER_FIELDS = frozenset({"namespace", "model", "prompt"})


def entry_filter(
    fields: Mapping[str, Any], *, tenant: str | None = None, all_tenants: bool = False
) -> store_pb2.EntryFilter:
    """A store filter from request fields: namespace, model, prompt, entry_ids (all optional)."""
    f = store_pb2.EntryFilter(tenant=tenant or "", all_tenants=all_tenants)
    if fields.get("namespace") is not None:
        namespace = fields["namespace"]
        if not isinstance(namespace, str):
            raise bad("'namespace' must be a string", "namespace")
        f.namespace = check_namespace(namespace, "namespace") if namespace else ""
    if fields.get("model") is not None:
        f.model = _text(fields["model"], "model")
    if fields.get("prompt") is not None:
        f.prompt_contains = _text(fields["prompt"], "prompt")
    ids = fields.get("entry_ids")
    if ids is not None:
        if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
            raise bad(f"'entry_ids' must be an array of 1-{MAX_IDS} entry ids", "entry_ids")
        f.entry_ids.extend(check_entry_id(i, "entry_ids") for i in ids)
    return f


def query_fields(request, allowed: set[str], *, also: frozenset[str] = frozenset({"limit"})) -> dict[str, str]:
    """The filter fields of a query string; any parameter not in `allowed` or `also` is a 400."""
    unknown = sorted(set(request.query_params) - allowed - also)
    if unknown:
        raise bad(f"unknown query parameter(s): {', '.join(unknown)}", unknown[0])
    return {k: v for k, v in request.query_params.items() if k in allowed}


def limit_from(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise bad("'limit' must be an integer from 1 to 1000", "limit")
    return int(raw)


def entry_json(info: store_pb2.EntryInfo, *, with_tenant: bool) -> dict[str, Any]:
    out = {
        "entry_id": info.entry_id,
        "namespace": info.namespace,
        "api_format": info.api_format,
        "model": info.model,
        "prompt": info.prompt,
        "created_at": info.created_at_ms // 1000,
        "expires_at": info.expires_at_ms // 1000,
        "size_bytes": info.size_bytes,
    }
    return {"tenant": info.tenant, **out} if with_tenant else out


@dataclass
class Invalidation:
    entries: list[store_pb2.EntryInfo]
    semantic_points: int | None  # None: the semantic tier is off or could not be reached


def invalidation_json(done: Invalidation, *, dry_run: bool, with_tenant: bool) -> dict[str, Any]:
    shown = done.entries[:1000]
    return {
        "object": "cache.invalidation",
        "dry_run": dry_run,
        "deleted": 0 if dry_run else len(done.entries),
        "matched": len(done.entries),
        "semantic_points_deleted": done.semantic_points,
        "entries": [entry_json(e, with_tenant=with_tenant) for e in shown],
    }


class CacheOperations:
    def __init__(
        self, store: StoreClient, index: SemanticIndexClient | None, evidence: EvidenceBook | None = None
    ) -> None:
        self.store = store
        self.index = index
        self.evidence = evidence  # feedback on a semantic match it served becomes an error-budget observation

    async def close(self) -> None:
        await self.store.close()
        if self.index is not None:
            await self.index.close()

    async def list(self, f: store_pb2.EntryFilter, limit: int) -> store_pb2.StoreListResponse:
        try:
            return await self.store.list_entries(f, limit)
        except BadRequest as exc:
            raise bad(str(exc)) from None
        except DependencyError:
            raise unavailable("the cache store") from None

    async def invalidate(self, f: store_pb2.EntryFilter, *, dry_run: bool = False) -> Invalidation:
        try:
            entries = await self.store.invalidate(f, dry_run=dry_run)
        except BadRequest as exc:
            raise bad(str(exc)) from None
        except DependencyError:
            raise unavailable("the cache store") from None
        if dry_run or self.index is None:
            return Invalidation(entries, None)
        try:
            points = await self._invalidate_semantic(f, entries)
        except DependencyError as exc:
            # Safe: the entries are gone from the store, so their points can no longer serve anything.
            log.warning("semantic_invalidation_failed", error=str(exc), entries=len(entries))
            points = None
        return Invalidation(entries, points)

    async def _invalidate_semantic(self, f: store_pb2.EntryFilter, entries: list[store_pb2.EntryInfo]) -> int:
        whole_scope = not (f.model or f.prompt_contains or f.entry_ids)
        if whole_scope and f.tenant:
            # A whole tenant or namespace: also the points whose entries had already expired.
            namespace = f.namespace if f.HasField("namespace") else None
            return await self.index.invalidate(f.tenant, namespace, [])
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for info in entries:
            groups[(info.tenant, info.namespace)].append(info.entry_id)
        deleted = 0
        for (tenant, namespace), ids in groups.items():
            for start in range(0, len(ids), SEMANTIC_BATCH):
                deleted += await self.index.invalidate(tenant, namespace, ids[start : start + SEMANTIC_BATCH])
        return deleted

    async def feedback(self, tenant: str, entry_id: str, correct: bool, namespace: str | None) -> dict[str, Any]:
        """Record a client's verdict on an answer it was served; a wrong one leaves the semantic tier at once."""
        f = store_pb2.EntryFilter(tenant=tenant, entry_ids=[entry_id])
        if namespace is not None:
            f.namespace = namespace
        found = (await self.list(f, 1)).matched
        if not found:
            raise ApiError(404, f"no entry {entry_id} in your cache", code="entry_not_found")
        removed: int | None = 0
        if not correct:
            removed = await self._remove_from_semantic(f, tenant, entry_id, namespace)
        try:
            await self.store.record_feedback(tenant, entry_id, correct)
        except DependencyError as exc:
            log.warning("feedback_count_failed", error=str(exc))
        match = self.evidence.served_match(tenant, entry_id) if self.evidence is not None else None
        if match is not None:
            await self.evidence.record(
                tenant, score=match.score, similarity=match.similarity, same=correct,
                source=store_pb2.OBSERVATION_SOURCE_FEEDBACK, pair=match.pair, counters={},
            )  # fmt: skip
        log.info("cache_feedback", tenant=tenant[:12], entry_id=entry_id[:16], correct=correct, semantic_points=removed)
        return {
            "object": "cache.feedback", "entry_id": entry_id, "correct": correct, "semantic_points_removed": removed,
        }  # fmt: skip

    async def _remove_from_semantic(self, f, tenant: str, entry_id: str, namespace: str | None) -> int | None:
        if self.index is None:
            return None
        try:
            return await self.index.invalidate(tenant, namespace, [entry_id])
        except DependencyError as exc:
            # The index cannot be reached: drop the entry from the store instead, which disables its
            # points just as surely (a semantic hit is served from the store) at the cost of the exact hit.
            log.warning("feedback_semantic_unavailable_entry_dropped", error=str(exc))
            await self.invalidate(f)
            return None

    async def stats(self, tenant: str) -> dict[str, Any]:
        try:
            stats = await self.store.stats(tenant)
        except DependencyError:
            raise unavailable("the cache store") from None
        points = None
        if self.index is not None:
            try:
                points = (await self.index.stats(tenant)).points
            except DependencyError:
                points = None
        return {"object": "cache.admin.stats", "tenant": tenant, **stats_json(stats), "semantic_points": points}
