"""Listing and invalidating entries by filter, and feedback counters, over the exact cache's layout.

Every Put also writes a small JSON record of the entry into `deja:{T}:meta` (namespace as the
client named it, API format, model, prompt, created, size), so an operator can list a tenant's
recent entries and invalidate by namespace, model or prompt text without reading the response
bodies. Namespace and entry id are matched on the member itself ("<ns hash>:<key hex>"), so they
also select entries written before the meta record existed; model and prompt need the record.

These are operator paths, not request paths: they walk a tenant's index (O(entries of the
tenant)) and delete in batches of 500, each batch one atomic script.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import orjson

from deja.cache_layout import namespace_tag, tenant_keys, tenant_prefix
from deja.errors import InvalidRequest
from deja.ids import is_valid_entry_id, is_valid_tenant
from deja.redis_client import AnyRedis
from deja.v1 import store_pb2

MAX_FILTER_CHARS = 1000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
BATCH = 500

# KEYS: idx, size, tok, stats, meta, entry keys...; ARGV: their members, in the same order
_DELETE_MANY = """
local freed, deleted = 0, 0
for i = 1, #ARGV do
  local m = ARGV[i]
  deleted = deleted + redis.call('DEL', KEYS[5 + i])
  freed = freed + tonumber(redis.call('HGET', KEYS[2], m) or '0')
end
redis.call('HDEL', KEYS[2], unpack(ARGV))
redis.call('HDEL', KEYS[3], unpack(ARGV))
redis.call('HDEL', KEYS[5], unpack(ARGV))
redis.call('ZREM', KEYS[1], unpack(ARGV))
if freed > 0 then redis.call('HINCRBY', KEYS[4], 'bytes', -freed) end
return deleted
"""


class InvalidFilter(InvalidRequest):
    """The filter or feedback is malformed (INVALID_ARGUMENT)."""


class _Store(Protocol):
    """What entry administration needs of the store (RedisExactStore): its Redis client."""

    @property
    def redis(self) -> AnyRedis: ...


def check_entry_id(entry_id: str) -> str:
    if not is_valid_entry_id(entry_id):
        raise InvalidFilter("entry_id must be 64 lowercase hex characters (the X-Deja-Entry header)")
    return entry_id


@dataclass(frozen=True)
class _Matcher:
    tag: str | None
    ids: frozenset[str]
    model: str
    prompt: str  # casefolded

    @classmethod
    def of(cls, f: store_pb2.EntryFilter) -> _Matcher:
        if f.all_tenants == bool(f.tenant):
            raise InvalidFilter("name exactly one of tenant and all_tenants")
        if f.tenant and not is_valid_tenant(f.tenant):
            raise InvalidFilter("tenant must be 1-128 characters of [A-Za-z0-9_-]")
        for name in ("namespace", "model", "prompt_contains"):
            if len(getattr(f, name)) > MAX_FILTER_CHARS:
                raise InvalidFilter(f"{name} is longer than {MAX_FILTER_CHARS} characters")
        if len(f.entry_ids) > MAX_LIMIT:
            raise InvalidFilter(f"at most {MAX_LIMIT} entry_ids")
        ids = frozenset(check_entry_id(i) for i in f.entry_ids)
        tag = namespace_tag(f.namespace) if f.HasField("namespace") else None
        return cls(tag, ids, f.model, f.prompt_contains.casefold())

    def member(self, member: str) -> bool:
        tag, _, key = member.partition(":")
        return (self.tag is None or tag == self.tag) and (not self.ids or key in self.ids)

    @property
    def needs_meta(self) -> bool:
        return bool(self.model or self.prompt)

    def meta(self, meta: dict | None) -> bool:
        if not self.needs_meta:
            return True
        if meta is None:
            return False
        return (not self.model or meta.get("model") == self.model) and (
            not self.prompt or self.prompt in str(meta.get("prompt", "")).casefold()
        )


def _info(tenant: str, member: str, expires_at_ms: float, meta: dict | None) -> store_pb2.EntryInfo:
    meta = meta or {}
    return store_pb2.EntryInfo(
        tenant=tenant,
        namespace=meta.get("ns", ""),
        entry_id=member.partition(":")[2],
        api_format=meta.get("fmt", ""),
        model=meta.get("model", ""),
        prompt=meta.get("prompt", ""),
        created_at_ms=int(meta.get("created", 0)),
        expires_at_ms=int(expires_at_ms),
        size_bytes=int(meta.get("size", 0)),
    )


def _batches(items: list, size: int = BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EntryAdmin:
    def __init__(self, store: _Store) -> None:
        self._redis = store.redis
        self._delete_many = self._redis.register_script(_DELETE_MANY)

    async def _tenants(self, f: store_pb2.EntryFilter) -> list[str]:
        if f.tenant:
            return [f.tenant]
        found = set()
        async for key in self._redis.scan_iter(match="deja:{*}:idx", count=1000):
            text = key.decode() if isinstance(key, bytes) else key
            found.add(text[len("deja:{") : -len("}:idx")])
        return sorted(t for t in found if is_valid_tenant(t))

    async def _matching(
        self, tenant: str, matcher: _Matcher, *, live_after_ms: float | None
    ) -> list[tuple[str, store_pb2.EntryInfo]]:
        """(member, info) of the tenant's entries that match."""
        prefix = tenant_prefix(tenant)
        low = f"({live_after_ms}" if live_after_ms is not None else "-inf"
        scored = await self._redis.zrangebyscore(f"{prefix}:idx", low, "+inf", withscores=True)
        members = [(m.decode(), score) for m, score in scored if matcher.member(m.decode())]
        out = []
        for batch in _batches(members, 1000):
            metas = await self._redis.hmget(f"{prefix}:meta", [m for m, _ in batch])
            for (member, score), raw in zip(batch, metas, strict=True):
                meta = orjson.loads(raw) if raw else None
                if matcher.meta(meta):
                    out.append((member, _info(tenant, member, score, meta)))
        return out

    async def list(self, f: store_pb2.EntryFilter, limit: int) -> store_pb2.StoreListResponse:
        """Live matching entries, newest first."""
        matcher = _Matcher.of(f)
        now_ms = time.time_ns() // 1_000_000
        limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        found: list[store_pb2.EntryInfo] = []
        for tenant in await self._tenants(f):
            found += [info for _, info in await self._matching(tenant, matcher, live_after_ms=now_ms)]
        found.sort(key=lambda info: (-info.created_at_ms, info.entry_id))
        return store_pb2.StoreListResponse(entries=found[:limit], matched=len(found))

    async def invalidate(self, f: store_pb2.EntryFilter, dry_run: bool) -> list[store_pb2.EntryInfo]:
        """Delete every matching entry (expired ones not yet purged included); returns what matched."""
        matcher = _Matcher.of(f)
        removed: list[store_pb2.EntryInfo] = []
        for tenant in await self._tenants(f):
            matched = await self._matching(tenant, matcher, live_after_ms=None)
            if not dry_run:
                prefix = tenant_prefix(tenant)
                keys = tenant_keys(prefix)
                for batch in _batches([member for member, _ in matched]):
                    entry_keys = [f"{prefix}:e:{m}" for m in batch]
                    await self._delete_many(keys=[*keys, *entry_keys], args=batch)
            removed += [info for _, info in matched]
        return removed

    async def record_feedback(self, tenant: str, entry_id: str, correct: bool) -> None:
        check_entry_id(entry_id)
        prefix = tenant_prefix(tenant)
        await self._redis.hincrby(f"{prefix}:stats", "feedback_correct" if correct else "feedback_incorrect", 1)
