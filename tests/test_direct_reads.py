"""The gateway's direct reads (deja.clients.direct_reads) against a real Redis-protocol server and a
real Valkey Cluster: they read what the store wrote, count hits exactly as the store's Get does, and
fail the way the gRPC client fails, so the request path still fails open."""

import asyncio
import os
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis

from deja.clients import BadRequest, DependencyTimeout, DependencyUnavailable, StoreClient
from deja.clients.direct_reads import DirectReads
from deja.v1 import common_pb2, store_pb2
from services.store.redis_store import RedisExactStore
from tests.helpers import on_every_redis, sdk, unique_prompt, wait_for_hit
from tools.cluster import free_port

pytestmark = pytest.mark.integration

LIMITS = dict(default_ttl_s=60, max_ttl_s=3600, max_entry_bytes=4096)
USAGE = common_pb2.Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8)


def entry(text: str = "answer") -> store_pb2.CacheEntry:
    return store_pb2.CacheEntry(
        api_format="openai.chat.completions", model="gpt-4o-mini", response=f'{{"t": "{text}"}}'.encode(), usage=USAGE
    )


def scope() -> common_pb2.Scope:
    return common_pb2.Scope(tenant=uuid.uuid4().hex, namespace="docs")


@pytest.fixture
async def store(any_redis_url):
    exact = RedisExactStore.from_url(any_redis_url, timeout_ms=1000, pool_size=8, **LIMITS)
    yield exact
    await exact.close()


@pytest.fixture
async def reads(any_redis_url):
    direct = DirectReads(any_redis_url, timeout_s=1.0, pool_size=4)
    yield direct
    await direct.close()


def refuse_delete(scope, key):
    raise AssertionError("only a corrupted value is deleted")


@on_every_redis
async def test_reads_what_the_store_wrote_and_counts_hits_as_its_get_does(store, reads):
    where, key = scope(), os.urandom(32)
    await store.put(where, key, entry(), 0)
    got = await reads.get(where, key, store_pb2.TIER_EXACT, refuse_delete)
    assert got == await store.get(where, key)  # the same entry, every field (id, timestamps included)
    assert got.response == entry().response and got.entry_id == key.hex()
    await reads.get(where, key, store_pb2.TIER_SEMANTIC, refuse_delete)
    await reads.get(where, key, store_pb2.TIER_UNSPECIFIED, refuse_delete)  # serves nobody: not counted
    await store.get(where, key, store_pb2.TIER_EXACT)
    stats = await store.stats(where.tenant)
    assert (stats.hits_exact, stats.hits_semantic, stats.tokens_saved) == (2, 1, 3 * 8)


@on_every_redis
async def test_absent_entries_and_other_scopes_read_as_none_and_count_nothing(store, reads):
    where, key = scope(), os.urandom(32)
    await store.put(where, key, entry(), 0)
    other_namespace = common_pb2.Scope(tenant=where.tenant, namespace="other")
    assert await reads.get(where, os.urandom(32), store_pb2.TIER_EXACT, refuse_delete) is None
    assert await reads.get(other_namespace, key, store_pb2.TIER_EXACT, refuse_delete) is None
    assert await reads.get(scope(), key, store_pb2.TIER_EXACT, refuse_delete) is None
    assert (await store.stats(where.tenant)).hits_exact == 0


async def test_a_corrupted_value_is_a_miss_and_is_deleted_with_its_accounting(store, reads, redis_url):
    where, key = scope(), os.urandom(32)
    await store.put(where, key, entry(), 0)
    raw = aioredis.from_url(redis_url)
    [value_key] = await raw.keys(f"deja:{{{where.tenant}}}:e:*")
    await raw.set(value_key, b"\xff\xff not a protobuf")
    deleted = []

    async def delete(s, k):
        deleted.append(k)
        return await store.delete(s, k)

    assert await reads.get(where, key, store_pb2.TIER_EXACT, delete) is None
    assert deleted == [key] and not await raw.exists(value_key)
    stats = await store.stats(where.tenant)
    assert (stats.entries, stats.bytes) == (0, 0)
    await raw.aclose()


@pytest.mark.parametrize(("tenant", "key"), [("", os.urandom(32)), ("has:colon", os.urandom(32)), ("t", b"short")])
async def test_a_malformed_scope_or_key_is_a_bad_request_not_a_redis_failure(reads, tenant, key):
    for _ in range(reads.breaker.threshold + 1):
        with pytest.raises(BadRequest):
            await reads.get(common_pb2.Scope(tenant=tenant), key, store_pb2.TIER_EXACT, refuse_delete)
    assert not reads.breaker.is_open


async def test_redis_down_is_unavailable_and_opens_the_breaker():
    reads = DirectReads(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5, pool_size=2)
    try:
        assert not await reads.serving()
        for _ in range(reads.breaker.threshold):
            with pytest.raises(DependencyUnavailable):
                await reads.get(scope(), os.urandom(32), store_pb2.TIER_EXACT, refuse_delete)
        assert reads.breaker.is_open
        with pytest.raises(DependencyUnavailable, match="circuit open"):
            await reads.get(scope(), os.urandom(32), store_pb2.TIER_EXACT, refuse_delete)
    finally:
        await reads.close()


async def test_a_redis_that_never_answers_times_out_within_the_deadline():
    async def silent(reader, writer):  # accepts the connection, reads, never replies
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reads = DirectReads(f"redis://127.0.0.1:{port}/0", timeout_s=0.2, pool_size=2)
    try:
        started = time.perf_counter()
        with pytest.raises(DependencyTimeout):
            await reads.get(scope(), os.urandom(32), store_pb2.TIER_EXACT, refuse_delete)
        assert time.perf_counter() - started < 1.0
    finally:
        await reads.close()
        server.close()


async def test_the_store_client_reads_directly_and_still_writes_through_the_service(redis_url):
    """StoreClient(direct=...) against a store address nobody serves: the read never needs it."""
    writer = RedisExactStore.from_url(redis_url, timeout_ms=1000, pool_size=2, **LIMITS)
    where, key = scope(), os.urandom(32)
    await writer.put(where, key, entry("direct"), 0)
    direct = DirectReads(redis_url, timeout_s=1.0, pool_size=2)
    client = StoreClient(f"127.0.0.1:{free_port()}", timeout_s=0.2, direct=direct)
    try:
        assert await direct.serving()
        got = await client.get(where, key, store_pb2.TIER_EXACT)
        assert got.response == entry("direct").response
        with pytest.raises(DependencyUnavailable):  # a write still goes to the (absent) store service
            await client.put(where, os.urandom(32), entry(), 0)
    finally:
        await client.close()
        await writer.close()


@pytest.mark.parametrize("direct_reads", [True, False], ids=["direct-reads", "through-the-store"])
def test_the_gateway_serves_exact_hits_either_way(own_cluster, direct_reads):
    running = own_cluster(direct_reads=direct_reads)
    client, messages = sdk(running), unique_prompt()
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    hit = wait_for_hit(client, model="gpt-4o-mini", messages=messages)
    assert hit.headers["x-deja-cache"] == "hit-exact"
    stats = httpx.get(f"{running.gateway_url}/v1/cache/stats", headers={"authorization": f"Bearer {client.api_key}"})
    assert stats.json()["hits"]["exact"] >= 1  # counted by the one script, whichever process ran it


def test_a_gateway_that_cannot_reach_redis_reports_the_exact_tier_down_and_still_answers(own_cluster):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # a wrong DEJA_GATEWAY_REDIS_URL; the store itself is fine
    running = own_cluster(direct_reads=False, extra_env={"DEJA_GATEWAY_REDIS_URL": nowhere})
    assert httpx.get(f"{running.gateway_url}/readyz").json() == {"status": "degraded", "tiers": {"exact": "down"}}
    client = sdk(running)
    for _ in range(3):  # fail open: each is a miss the provider answers
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=unique_prompt())
        assert raw.status_code == 200 and raw.headers["x-deja-cache"] == "miss"
        assert raw.parse().choices[0].message.content
