"""The one way Deja connects to Redis: a single server, or a Redis Cluster, chosen by the URL.

    redis://host:port/db, rediss://..., unix:///path   one server (redis.asyncio.Redis)
    redis+cluster://host:port, rediss+cluster://...    a Redis Cluster; the node named is only the
                                                       seed, the client finds the others
                                                       (redis.asyncio.RedisCluster)

The store, its observations and session memory, and the embedder's cache all build their client
here, so they agree on what a URL means and on the fail-open rule: a call ends within the
configured timeout (pool wait, connect, redirects and retries included) and under a burst waits
for a free connection instead of failing.

On a cluster, MOVED/ASK redirects, slot-map refreshes and retries after a failover are
RedisCluster's own. What this module adds is the bound on the whole call, the mapping of
cluster-down states to redis ConnectionError, so callers see the same errors as for one server,
and a command table loaded once, so a dead primary cannot fail the calls to the other shards.
Multi-key commands must stay within one hash slot (Deja's keys share a `{tenant}` tag);
`mget` below is the exception, for keys that are spread on purpose (the embedding cache).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis._parsers import AsyncCommandsParser
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SCHEMES_TEXT = "redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://"

# Cluster states that mean "not available right now" (a failover in progress, a slot without a node).
_CLUSTER_DOWN = (redis.exceptions.ClusterError, redis.exceptions.SlotNotCoveredError)

AnyRedis = aioredis.Redis | RedisCluster


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def url_problem(url: str) -> str | None:
    """Why `url` cannot work, or None (for settings validation)."""
    parts = urlsplit(url)
    if parts.scheme not in (*SINGLE_SCHEMES, *CLUSTER_SCHEMES):
        return f"expected a {SCHEMES_TEXT} URL, got {url!r}"
    if parts.scheme in CLUSTER_SCHEMES:
        if not parts.hostname:
            return f"a cluster URL names a seed node (host:port), got {url!r}"
        if parts.path.strip("/") not in ("", "0"):
            return f"a Redis Cluster has only database 0, got {url!r}"
    return None


def redis_client(url: str, *, timeout_ms: int, pool_size: int) -> AnyRedis:
    """A client whose every command is bounded by `timeout_ms`, with up to `pool_size` connections
    (per node, on a cluster) that callers wait for (up to the same timeout) under bursts."""
    timeout_s = timeout_ms / 1000
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        seed = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        return BoundedRedisCluster.from_url(
            seed,
            deadline_s=timeout_s,
            concurrency=pool_size,
            # commands and pipelines each have `pool_size` slots (see BoundedRedisCluster)
            max_connections=2 * pool_size,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # Serve the slots that have a node while another shard fails over.
            require_full_coverage=False,
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


async def mget(client: AnyRedis, keys: list[str]) -> list[bytes | None]:
    """MGET of keys that may live in different slots: on a cluster one MGET per slot, sent together
    in one pipeline (one round trip per node); values come back in the order of `keys`."""
    if not isinstance(client, RedisCluster):
        return await client.mget(keys)
    by_slot: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        by_slot.setdefault(key_slot(key.encode()), []).append(index)
    pipe = client.pipeline(transaction=False)
    for indexes in by_slot.values():
        pipe.execute_command("MGET", *(keys[i] for i in indexes))  # pipe.mget is refused on a cluster
    values: list[bytes | None] = [None] * len(keys)
    for indexes, found in zip(by_slot.values(), await pipe.execute(), strict=True):
        for index, value in zip(indexes, found, strict=True):
            values[index] = value
    return values


class BoundedRedisCluster(RedisCluster):
    """RedisCluster with a deadline on each call and waiting, not failing, under bursts.

    RedisCluster raises MaxConnectionsError as soon as a node's connections are all busy, and its
    retries (one per failed node, each with its own socket timeout) can add up past the caller's
    timeout. Here a command waits for one of `concurrency` slots, and the wait plus the command
    (redirects, slot-map refresh and retries included) end within `deadline_s`. Pipelines have
    slots of their own: a pipeline resends redirected commands one by one while holding its slot."""

    def __init__(self, *args: Any, deadline_s: float, concurrency: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_parser = _CommandTableOnce()
        self.deadline_s = deadline_s
        self._commands = asyncio.Semaphore(concurrency)
        self._pipelines = asyncio.Semaphore(concurrency)

    async def bounded(self, slots: asyncio.Semaphore, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            async with asyncio.timeout(self.deadline_s), slots:
                return await call()
        except TimeoutError:
            raise redis.exceptions.TimeoutError(f"Redis Cluster gave no answer within {self.deadline_s}s") from None
        except _CLUSTER_DOWN as exc:
            raise redis.exceptions.ConnectionError(f"Redis Cluster unavailable: {exc}") from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        run = super().execute_command

        async def initialized_then_run() -> Any:
            # RedisCluster picks a command's routing before it loads the slot map: a command issued
            # before the first load (or after a reset) would go to an arbitrary node and bounce off
            # MOVED, and each 5th MOVED resets the client under every call in flight.
            if self._initialize:
                await self.initialize()
            return await run(*args, **kwargs)

        return await self.bounded(self._commands, initialized_then_run)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise redis.exceptions.RedisClusterException("shard_hint is not supported in cluster mode")
        return _BoundedPipeline(self, transaction)


class _CommandTableOnce(AsyncCommandsParser):
    """The command table (where each command's keys are), loaded on the first slot-map load only.

    RedisCluster reloads it after every slot-map refresh, from the first primary of the new map.
    While a killed primary's replica is not yet promoted, that map still lists the dead node, and
    when it comes first, COMMAND fails, the refresh fails, and so does every call that waits on it:
    calls to the healthy shards too, for as long as the failover lasts. The table is the same on
    every node and does not change when a shard fails over."""

    __slots__ = ()

    async def initialize(self, node: Any = None) -> None:
        if node is not None:
            self.node = node
        if not self.commands:
            await super().initialize()


class _BoundedPipeline(ClusterPipeline):
    __slots__ = ()

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        run = super().execute
        client: BoundedRedisCluster = self.cluster_client
        return await client.bounded(client._pipelines, lambda: run(raise_on_error, allow_redirections))
