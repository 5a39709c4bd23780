"""The exact cache against a real Redis-protocol server, directly and through its gRPC service."""

import asyncio
import os
import uuid

import grpc
import pytest
import redis.asyncio as aioredis

from deja.clients import BadRequest, DependencyUnavailable, StoreClient
from deja.v1 import common_pb2, store_pb2
from services.store.main import SERVICE_NAME
from services.store.redis_store import InvalidRequest, RedisExactStore, totals
from tests.helpers import in_process, on_every_redis, serving, stop_in_process, store_service, until_async
from tools.cluster import free_port

pytestmark = pytest.mark.integration

LIMITS = dict(default_ttl_s=60, max_ttl_s=3600, max_entry_bytes=4096)


def entry(text: str = "answer") -> store_pb2.CacheEntry:
    return store_pb2.CacheEntry(
        api_format="openai.chat.completions",
        model="gpt-4o-mini",
        response=f'{{"text": "{text}"}}'.encode(),
        usage=common_pb2.Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
    )


def scope(namespace: str = "") -> common_pb2.Scope:
    return common_pb2.Scope(tenant=uuid.uuid4().hex, namespace=namespace)


@pytest.fixture
async def store(any_redis_url):
    exact = RedisExactStore.from_url(any_redis_url, timeout_ms=1000, pool_size=8, **LIMITS)
    yield exact
    await exact.close()


@on_every_redis
async def test_put_then_get_returns_the_complete_entry(store):
    where, key = scope(), os.urandom(32)
    assert await store.get(where, key) is None
    result = await store.put(where, key, entry(), 0)
    assert result.stored and result.size_bytes > 0
    got = await store.get(where, key)
    assert got.response == entry().response and got.usage.total_tokens == 8
    assert got.entry_id == key.hex()
    assert got.expires_at_ms - got.created_at_ms == LIMITS["default_ttl_s"] * 1000


@on_every_redis
async def test_entries_are_isolated_by_tenant_and_namespace(store):
    key = os.urandom(32)
    tenant_a, tenant_b = scope(), scope()
    await store.put(tenant_a, key, entry("a"), 0)
    assert await store.get(tenant_b, key) is None
    namespaced = common_pb2.Scope(tenant=tenant_a.tenant, namespace="docs")
    assert await store.get(namespaced, key) is None
    await store.put(namespaced, key, entry("docs"), 0)
    assert (await store.get(tenant_a, key)).response == entry("a").response
    assert (await store.get(namespaced, key)).response == entry("docs").response


@on_every_redis
async def test_ttl_expires_entries_and_stats_follow(store):
    where, key = scope(), os.urandom(32)
    short = await store.put(where, key, entry(), 1)
    long = await store.put(where, os.urandom(32), entry("kept"), 60)
    stats = await store.stats(where.tenant)
    assert (stats.entries, stats.bytes) == (2, short.size_bytes + long.size_bytes)
    await asyncio.sleep(1.2)
    assert await store.get(where, key) is None
    stats = await store.stats(where.tenant)
    assert (stats.entries, stats.bytes) == (1, long.size_bytes)


@on_every_redis
async def test_ttl_is_capped_by_the_configured_maximum(store):
    where, key = scope(), os.urandom(32)
    result = await store.put(where, key, entry(), 10**6)
    got = await store.get(where, key)
    assert result.expires_at_ms - got.created_at_ms == LIMITS["max_ttl_s"] * 1000


@on_every_redis
async def test_stats_count_hits_by_tier_tokens_misses_entries_and_bytes(store):
    where = scope()
    keys = [os.urandom(32) for _ in range(3)]
    sizes = [(await store.put(where, k, entry(str(i) * (i + 1)), 0)).size_bytes for i, k in enumerate(keys)]
    await store.get(where, keys[0], store_pb2.TIER_EXACT)
    await store.get(where, keys[1], store_pb2.TIER_EXACT)
    await store.get(where, keys[2], store_pb2.TIER_SEMANTIC)
    await store.get(where, keys[2])  # a read that serves nobody counts nothing
    await store.get(where, os.urandom(32), store_pb2.TIER_EXACT)  # not found: misses are the gateway's to count
    await store.count_misses(where.tenant, 2)
    stats = await store.stats(where.tenant)
    assert (stats.hits, stats.hits_exact, stats.hits_semantic, stats.misses) == (3, 2, 1, 2)
    assert stats.tokens_saved == 3 * 8  # each entry carries 3 prompt + 5 completion tokens
    assert (stats.entries, stats.bytes) == (3, sum(sizes))
    # overwriting replaces the size; deleting frees it
    again = await store.put(where, keys[0], entry("longer answer than before"), 0)
    assert await store.delete(where, keys[1])
    assert not await store.delete(where, keys[1])
    stats = await store.stats(where.tenant)
    assert (stats.entries, stats.bytes) == (2, again.size_bytes + sizes[2])


@on_every_redis
async def test_oversize_entries_are_refused_not_truncated(store):
    where, key = scope(), os.urandom(32)
    result = await store.put(where, key, entry("x" * 5000), 0)
    assert not result.stored and result.reason == "too_large"
    assert await store.get(where, key) is None
    assert (await store.stats(where.tenant)).entries == 0


async def test_a_corrupted_value_is_a_miss_and_is_removed(store, redis_url):
    where, key = scope(), os.urandom(32)
    await store.put(where, key, entry(), 0)
    raw = aioredis.from_url(redis_url)
    [entry_key] = await raw.keys(f"deja:{{{where.tenant}}}:e:*")
    await raw.set(entry_key, b"\xff\xff not a protobuf")
    assert await store.get(where, key) is None
    assert not await raw.exists(entry_key)
    await raw.aclose()


@pytest.mark.parametrize(
    ("tenant", "key"),
    [("", os.urandom(32)), ("has:colon", os.urandom(32)), ("t", b"short")],
)
async def test_malformed_scope_or_key_is_refused(store, tenant, key):
    with pytest.raises(InvalidRequest):
        await store.get(common_pb2.Scope(tenant=tenant), key)


# -- through gRPC -----------------------------------------------------------------------


async def test_grpc_service_round_trip_errors_and_health(redis_url):
    port = free_port()
    client = StoreClient(f"127.0.0.1:{port}", timeout_s=1.0)
    async with in_process(store_service(redis_url, port, **LIMITS)) as server:
        await serving(client, SERVICE_NAME)

        where, key = scope(), os.urandom(32)
        assert await client.get(where, key) is None
        assert (await client.put(where, key, entry())).stored
        assert (await client.get(where, key)).response == entry().response
        assert (await client.stats(where.tenant)).entries == 1
        assert await client.delete(where, key)
        with pytest.raises(BadRequest):
            await client.get(common_pb2.Scope(tenant=""), key)

        await stop_in_process(server)
        # after SIGTERM the server is gone: calls fail as "unavailable", which the gateway treats as a miss
        with pytest.raises(DependencyUnavailable):
            await client.get(where, key)
    await client.close()


async def test_health_is_not_serving_while_redis_is_unreachable():
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    port = free_port()
    async with (
        in_process(store_service(dead_redis, port, **LIMITS)),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        client = StoreClient(f"127.0.0.1:{port}", timeout_s=1.0)

        async def not_serving() -> bool:
            try:
                await channel.channel_ready()
            except Exception:
                return False
            return not await client.serving(SERVICE_NAME) and await client.serving("")  # "" = liveness: stays up

        await asyncio.sleep(0.3)
        await until_async(not_serving, "NOT_SERVING", 5)
        with pytest.raises(DependencyUnavailable):
            await client.get(scope(), os.urandom(32))
        await client.close()


@on_every_redis
async def test_totals_count_tenants_live_entries_and_bytes_across_tenants(store):
    before = await totals(store.redis)
    a, b = scope(), scope()
    sizes = [(await store.put(where, os.urandom(32), entry(), 0)).size_bytes for where in (a, a, b)]
    after = await totals(store.redis)
    assert [x - y for x, y in zip(after, before, strict=True)] == [2, 3, sum(sizes)]
