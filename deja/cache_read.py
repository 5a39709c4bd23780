"""The exact cache's read, written once: one Lua call returns an entry and counts the hit.

The store service runs it for its Get; the gateway runs the same script straight against the
store's Redis when DEJA_GATEWAY_REDIS_URL is set (deja.clients.direct_reads), which saves a gRPC
hop on every lookup. Both count a hit under the tier the caller names (none for reads that serve
nobody) and add the entry's tokens to `tokens_saved`, so the tenant's stats do not depend on which
process read. Writes, deletes and stats stay in the store service. Keys: deja.cache_layout.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from deja.cache_layout import entry_key, member, tenant_keys, tenant_prefix
from deja.redis_client import AnyRedis
from deja.v1 import common_pb2, store_pb2

# KEYS: entry, tok, stats; ARGV: member, tier counter ("" = count nothing)
GET_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if v and ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  redis.call('HINCRBY', KEYS[3], 'tokens_saved', tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'))
end
return v
"""

TIER_COUNTERS = {store_pb2.TIER_EXACT: "hits_exact", store_pb2.TIER_SEMANTIC: "hits_semantic"}


class Corrupt(Exception):
    """The stored value is not a CacheEntry: never served; the caller deletes it (with its accounting)."""


class EntryReader:
    def __init__(self, client: AnyRedis) -> None:
        self._get = client.register_script(GET_SCRIPT)

    async def get(
        self, scope: common_pb2.Scope, key: bytes, count_hit_as: int = store_pb2.TIER_UNSPECIFIED
    ) -> store_pb2.CacheEntry | None:
        """The entry, or None; raises InvalidRequest for a bad tenant or key, Corrupt for an unreadable value."""
        prefix, name = tenant_prefix(scope.tenant), member(scope, key)
        _idx, _size, tok, stats, _meta = tenant_keys(prefix)
        raw = await self._get(
            keys=[entry_key(prefix, name), tok, stats],
            args=[name, TIER_COUNTERS.get(count_hit_as, "")],
        )
        if raw is None:
            return None
        try:
            return store_pb2.CacheEntry.FromString(raw)
        except DecodeError:
            raise Corrupt(f"{name}: not a CacheEntry") from None
