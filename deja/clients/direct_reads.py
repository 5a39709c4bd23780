"""The store's Get, run in the caller's process against the store's own Redis (the gateway, when
DEJA_GATEWAY_REDIS_URL is set).

Every lookup reads the exact cache: the exact tier for every request, and the semantic tier for
the entry it serves. Through the store service each read is a gRPC round trip, and on a 2-core
machine that hop cost as much CPU as the whole gateway's handling of an exact hit. Here the read is
the store's own script (deja.cache_read: same keys, same hit accounting) over one pooled Redis
connection. Everything else (writes, deletes, stats, sessions) still goes through the store.

It fails the way the gRPC client does, so the request path's fail-open handling is unchanged: a
deadline on the whole call, the same circuit breaker, Redis errors as DependencyUnavailable /
DependencyTimeout, a bad tenant or key as BadRequest. A corrupted value is a miss, and is deleted
through the store service, which keeps the tenant's accounting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.exceptions

from deja.cache_read import Corrupt, EntryReader
from deja.clients.base import BadRequest, CircuitBreaker, CircuitOpen, DependencyTimeout, DependencyUnavailable
from deja.errors import InvalidRequest
from deja.redis_client import redis_client
from deja.v1 import common_pb2, store_pb2

Delete = Callable[[common_pb2.Scope, bytes], Awaitable[bool]]
NAME = "redis (direct reads)"  # the dependency, in the breaker's logs and in every error raised here


class DirectReads:
    def __init__(self, url: str, *, timeout_s: float, pool_size: int, breaker: CircuitBreaker | None = None) -> None:
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(name=NAME)
        self._redis = redis_client(url, timeout_ms=max(1, int(timeout_s * 1000)), pool_size=pool_size)
        self._reader = EntryReader(self._redis)

    async def get(
        self, scope: common_pb2.Scope, key: bytes, count_hit_as: int, delete: Delete
    ) -> store_pb2.CacheEntry | None:
        if not self.breaker.allow():
            raise CircuitOpen(f"{NAME}: circuit open")
        try:
            async with asyncio.timeout(self.timeout_s):
                entry = await self._reader.get(scope, key, count_hit_as)
        except InvalidRequest as exc:
            self.breaker.record(True)  # Redis is fine; the request was not
            raise BadRequest(str(exc)) from None
        except Corrupt:
            self.breaker.record(True)
            await delete(scope, key)
            return None
        except asyncio.CancelledError:
            self.breaker.record(False)  # the caller's deadline ran out first: a hung Redis must open the breaker
            raise
        except (TimeoutError, redis.exceptions.TimeoutError):
            self.breaker.record(False)
            raise DependencyTimeout(f"{NAME}: no answer within {self.timeout_s}s") from None
        except redis.exceptions.RedisError as exc:
            self.breaker.record(False)
            raise DependencyUnavailable(f"{NAME}: {type(exc).__name__} {exc}") from None
        self.breaker.record(True)
        return entry

    async def serving(self, timeout_s: float = 0.5) -> bool:
        """Redis answers a PING: the gateway's readiness reports the exact tier down when it cannot read."""
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self._redis.ping())
        except (TimeoutError, redis.exceptions.RedisError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
