"""The exact cache in Redis: entries, TTLs, size limits and per-tenant accounting.

Layout (every key of a tenant shares the hash tag `{tenant}`, so the Lua scripts stay
valid on Redis Cluster, where each tenant lives on one shard):

    deja:{T}:e:<ns>:<key hex>   serialized CacheEntry, with a Redis TTL
    deja:{T}:idx                ZSET  member "<ns>:<key hex>" -> expires_at_ms
    deja:{T}:size               HASH  member -> stored bytes
    deja:{T}:tok                HASH  member -> the entry's prompt + completion tokens
    deja:{T}:stats              HASH  hits_exact, hits_semantic, misses, tokens_saved, bytes,
                                      feedback_correct, feedback_incorrect
    deja:{T}:meta               HASH  member -> JSON {ns, fmt, model, prompt, created, size}
                                      (listing and invalidation: see entries.py)

The key names are built in deja/cache_layout.py, which entries.py shares; the read (Get) is
deja/cache_read.py, which the gateway also runs when it reads Redis directly.

Entries expire by Redis TTL; the index and byte counter are trimmed lazily (on Put and
Stats) so `entries` and `bytes` count only live entries. Each operation is one round trip.
A Get counts a hit under the tier the caller names (none for reads that serve nobody) and adds
the entry's tokens to `tokens_saved` (deja.cache_read); misses are counted by the gateway's CountMisses, because
only it knows when a request found nothing in *any* tier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deja.cache_layout import MAX_PROMPT_CHARS, entry_key, entry_meta, member, tenant_keys, tenant_prefix
from deja.cache_read import Corrupt, EntryReader
from deja.errors import InvalidRequest
from deja.redis_client import AnyRedis, redis_client
from deja.v1 import store_pb2

# Shared by put and stats: drop up to 500 expired members from the index and byte count.
_PURGE = """
local function purge(idx, size, tok, stats, now, meta)
  local gone = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, 500)
  if #gone == 0 then return end
  local freed = 0
  for _, m in ipairs(gone) do
    freed = freed + tonumber(redis.call('HGET', size, m) or '0')
  end
  redis.call('HDEL', size, unpack(gone))
  redis.call('HDEL', tok, unpack(gone))
  redis.call('HDEL', meta, unpack(gone))
  redis.call('ZREM', idx, unpack(gone))
  redis.call('HINCRBY', stats, 'bytes', -freed)
end
"""

# KEYS: entry, idx, size, tok, stats, meta; ARGV: member, value, ttl_ms, expires_at_ms, now_ms, tokens, meta
_PUT = (
    _PURGE
    + """
purge(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[5], KEYS[6])
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local new = string.len(ARGV[2])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], new)
redis.call('HSET', KEYS[4], ARGV[1], ARGV[6])
redis.call('HSET', KEYS[6], ARGV[1], ARGV[7])
redis.call('HINCRBY', KEYS[5], 'bytes', new - old)
return new
"""
)

# KEYS: entry, idx, size, tok, stats, meta; ARGV: member
_DELETE = """
local existed = redis.call('DEL', KEYS[1])
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if old > 0 then redis.call('HINCRBY', KEYS[5], 'bytes', -old) end
return existed
"""

# KEYS: idx, size, tok, stats, meta; ARGV: now_ms
_STATS = (
    _PURGE
    + """
purge(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], KEYS[5])
local s = redis.call('HMGET', KEYS[4], 'hits_exact', 'hits_semantic', 'misses', 'tokens_saved', 'bytes',
                     'feedback_correct', 'feedback_incorrect')
for i = 1, 7 do s[i] = s[i] or '0' end
s[8] = redis.call('ZCARD', KEYS[1])
return s
"""
)


@dataclass(frozen=True)
class PutResult:
    stored: bool
    reason: str = ""
    expires_at_ms: int = 0
    size_bytes: int = 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RedisExactStore:
    def __init__(
        self,
        client: AnyRedis,
        *,
        default_ttl_s: int,
        max_ttl_s: int,
        max_entry_bytes: int,
    ) -> None:
        self._redis = client
        self._default_ttl_s = default_ttl_s
        self._max_ttl_s = max_ttl_s
        self._max_entry_bytes = max_entry_bytes
        self._reader = EntryReader(client)
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)
        self._stats = client.register_script(_STATS)

    @classmethod
    def from_url(cls, url: str, *, timeout_ms: int, pool_size: int, **limits: int) -> RedisExactStore:
        return cls(redis_client(url, timeout_ms=timeout_ms, pool_size=pool_size), **limits)

    @property
    def redis(self) -> AnyRedis:
        return self._redis

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    # -- keys (deja.cache_layout) ------------------------------------------------------

    @staticmethod
    def _keys(scope, key: bytes) -> tuple[str, str, list[str]]:
        prefix = tenant_prefix(scope.tenant)
        name = member(scope, key)
        return name, entry_key(prefix, name), tenant_keys(prefix)

    # -- operations --------------------------------------------------------------------

    async def get(
        self, scope, key: bytes, count_hit_as: int = store_pb2.TIER_UNSPECIFIED
    ) -> store_pb2.CacheEntry | None:
        try:
            return await self._reader.get(scope, key, count_hit_as)
        except Corrupt:
            # A corrupted value is never served: drop it and report a miss.
            await self.delete(scope, key)
            return None

    async def put(self, scope, key: bytes, entry: store_pb2.CacheEntry, ttl_s: int) -> PutResult:
        if not entry.response:
            raise InvalidRequest("entry.response is empty")
        name, value_key, keys = self._keys(scope, key)
        ttl_s = min(ttl_s or self._default_ttl_s, self._max_ttl_s)
        now = _now_ms()
        stored = store_pb2.CacheEntry()
        stored.CopyFrom(entry)
        stored.entry_id = key.hex()
        stored.prompt = entry.prompt[:MAX_PROMPT_CHARS]
        stored.created_at_ms = now
        stored.expires_at_ms = now + ttl_s * 1000
        value = stored.SerializeToString()
        if len(value) > self._max_entry_bytes:
            return PutResult(stored=False, reason="too_large", size_bytes=len(value))
        tokens = entry.usage.prompt_tokens + entry.usage.completion_tokens
        meta = entry_meta(scope, stored, len(value))
        await self._put(
            keys=[value_key, *keys],
            args=[name, value, ttl_s * 1000, stored.expires_at_ms, now, tokens, meta],
        )
        return PutResult(stored=True, expires_at_ms=stored.expires_at_ms, size_bytes=len(value))

    async def delete(self, scope, key: bytes) -> bool:
        name, value_key, keys = self._keys(scope, key)
        return bool(await self._delete(keys=[value_key, *keys], args=[name]))

    async def count_misses(self, tenant: str, misses: int) -> None:
        await self._redis.hincrby(f"{tenant_prefix(tenant)}:stats", "misses", misses)

    async def stats(self, tenant: str) -> store_pb2.TenantStats:
        exact, semantic, misses, tokens, nbytes, correct, incorrect, entries = map(
            int, await self._stats(keys=tenant_keys(tenant_prefix(tenant)), args=[_now_ms()])
        )
        return store_pb2.TenantStats(
            tenant=tenant,
            hits=exact + semantic,
            hits_exact=exact,
            hits_semantic=semantic,
            misses=misses,
            tokens_saved=tokens,
            entries=entries,
            bytes=max(0, nbytes),
            feedback_correct=correct,
            feedback_incorrect=incorrect,
        )


async def totals(client: AnyRedis, now_ms: int | None = None) -> tuple[int, int, int]:
    """(tenants, live entries, bytes) over every tenant, for metrics: one SCAN pass, O(tenants) (on a
    cluster, RedisCluster's scan_iter walks every primary).

    Bytes include entries expired since the last lazy trim, so they may run a little high."""
    now_ms = now_ms or _now_ms()
    tenants = entries = nbytes = 0
    async for idx in client.scan_iter(match="deja:{*}:idx", count=500):
        prefix = idx[: -len(b":idx")] if isinstance(idx, bytes) else idx[: -len(":idx")]
        stats = prefix + (b":stats" if isinstance(prefix, bytes) else ":stats")
        live, size = await client.pipeline(transaction=False).zcount(idx, now_ms, "+inf").hget(stats, "bytes").execute()
        tenants += 1
        entries += int(live)
        nbytes += max(0, int(size or 0))
    return tenants, entries, nbytes
