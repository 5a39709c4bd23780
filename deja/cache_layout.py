"""The exact cache's key layout in Redis (see services/store/redis_store.py's docstring), written once.

The store's operations (redis_store), the operator paths over the same keys (entries) and the one
read that also runs outside the store (deja.cache_read: the gateway's direct reads) build tenant
prefixes, members and meta records here, so they can never disagree on a key.
"""

from __future__ import annotations

import blake3
import orjson

from deja.errors import InvalidRequest
from deja.ids import TENANT_RULE, is_valid_tenant
from deja.v1 import common_pb2, store_pb2

MAX_PROMPT_CHARS = 1000  # of an entry's prompt kept (in the entry and its meta record)


def tenant_prefix(tenant: str) -> str:
    """`deja:{T}`: the hash tag keeps a tenant's keys on one Redis Cluster shard."""
    if not is_valid_tenant(tenant):
        raise InvalidRequest(f"scope.{TENANT_RULE}")
    return f"deja:{{{tenant}}}"


def tenant_keys(prefix: str) -> list[str]:
    """The tenant's keys every script takes, in this order: idx, size, tok, stats, meta."""
    return [f"{prefix}:idx", f"{prefix}:size", f"{prefix}:tok", f"{prefix}:stats", f"{prefix}:meta"]


def entry_key(prefix: str, name: str) -> str:
    """`deja:{T}:e:<member>`: the serialized CacheEntry, with a Redis TTL."""
    return f"{prefix}:e:{name}"


def namespace_tag(namespace: str) -> str:
    """The member prefix of a namespace: caller-chosen text, hashed so it cannot forge key structure."""
    return blake3.blake3(namespace.encode()).hexdigest(8) if namespace else "-"


def member(scope: common_pb2.Scope, key: bytes) -> str:
    """`<ns tag>:<key hex>`, the entry's name in the tenant's index and hashes."""
    if len(key) != 32:
        raise InvalidRequest("key must be 32 bytes (blake3 of the canonical request)")
    return f"{namespace_tag(scope.namespace)}:{key.hex()}"


def entry_meta(scope: common_pb2.Scope, entry: store_pb2.CacheEntry, size: int) -> bytes:
    """The JSON record listing and invalidation read instead of the entry's body."""
    return orjson.dumps(
        {
            "ns": scope.namespace,
            "fmt": entry.api_format,
            "model": entry.model,
            "prompt": entry.prompt,
            "created": entry.created_at_ms,
            "size": size,
        }
    )
