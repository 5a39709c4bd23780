"""Which points each operation touches, and which payload keys are indexed, written once for both engines.

The embedded engine (qdrant_edge) and the Qdrant client spell a filter condition with different
classes, but both backends must select exactly the same points: each backend hands its spelling
(`Spelling`) to these functions, which decide the conditions.
"""

from __future__ import annotations

from typing import Any, Protocol

from services.semantic_index.backend import (
    CONTEXT,
    ENTRY_ID,
    EXPIRES_AT_MS,
    NAMESPACE,
    SCOPE,
    TENANT,
    SearchQuery,
    now_ms,
    point_id,
)


class Spelling(Protocol):
    """One engine's filter conditions (all of a list must hold)."""

    def match(self, key: str, value: str) -> Any: ...
    def match_any(self, key: str, values: list[str]) -> Any: ...
    def has_id(self, ids: list[str]) -> Any: ...
    def live(self, now: int) -> Any: ...
    def expired(self, now: int) -> Any: ...


def payload_indexes(tenant: Any, keyword: Any, time_range: Any) -> list[tuple[str, Any]]:
    """(key, the engine's index schema) of each payload index a collection gets: the tenant's (its
    points kept together), a keyword index on every key the filters match, expiry as a range."""
    return [
        (TENANT, tenant),
        (SCOPE, keyword),
        (NAMESPACE, keyword),
        (CONTEXT, keyword),
        (ENTRY_ID, keyword),  # invalidation and feedback select by entry
        (EXPIRES_AT_MS, time_range),
    ]


def search(s: Spelling, query: SearchQuery) -> list:
    # scope first: the planner starts from the most selective condition it is given.
    return [
        s.match(SCOPE, query.scope),
        s.match(TENANT, query.tenant),
        s.match(NAMESPACE, query.namespace),
        s.match(CONTEXT, query.context),
        s.live(now_ms()),
    ]


def delete(s: Spelling, tenant: str, namespace: str, entry_ids: list[str]) -> list:
    # The ids already encode the scope; matching tenant and namespace too makes "only this
    # scope" hold by construction rather than by hash.
    ids = sorted({point_id(tenant, namespace, entry_id) for entry_id in entry_ids})
    return [s.has_id(ids), s.match(TENANT, tenant), s.match(NAMESPACE, namespace)]


def tenant(s: Spelling, tenant: str) -> list:
    return [s.match(TENANT, tenant)]


def invalidate(s: Spelling, tenant: str, namespace: str | None, entry_ids: list[str]) -> list:
    conditions = [s.match(TENANT, tenant)]
    if namespace is not None:
        conditions.append(s.match(NAMESPACE, namespace))
    if entry_ids:
        conditions.append(s.match_any(ENTRY_ID, sorted(set(entry_ids))))
    return conditions


def count(s: Spelling, tenant: str | None, include_expired: bool) -> list:
    conditions = [] if tenant is None else [s.match(TENANT, tenant)]
    if not include_expired:
        conditions.append(s.live(now_ms()))
    return conditions


def expired(s: Spelling) -> list:
    return [s.expired(now_ms())]
