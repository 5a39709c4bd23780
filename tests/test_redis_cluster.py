"""Deja on a real Redis Cluster (Valkey, three primaries with one replica each, tests/valkey_cluster.py).

The single-server tests of the store, its listing and session memory run against the cluster too
(`helpers.on_every_redis` in their own files); here: what only a cluster has (tenants on every primary),
the embedding cache, an exact and a semantic hit through the whole gateway, and a primary killed under load.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import blake3
import numpy as np
import openai
import pytest
import redis.exceptions

from deja.redis_client import is_cluster_url, redis_client, url_problem
from deja.v1 import common_pb2, store_pb2
from services.embedder.cache import EmbeddingCache
from services.store.entries import EntryAdmin
from services.store.redis_store import RedisExactStore, totals
from tests.helpers import ask, learn, make_cluster, sdk, unique_prompt, wait_for_hit

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
LIMITS = dict(default_ttl_s=60, max_ttl_s=3600, max_entry_bytes=8192)


def entry(text: str = "answer", model: str = "gpt-4o-mini") -> store_pb2.CacheEntry:
    return store_pb2.CacheEntry(
        api_format="openai.chat.completions", model=model, prompt="How do I center a div?",
        response=f'{{"text": "{text}"}}'.encode(),
        usage=common_pb2.Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
    )  # fmt: skip


def tenant_on_each_primary(cluster) -> dict[int, str]:
    """primary port -> a tenant whose hash tag lands on that primary."""
    found: dict[int, str] = {}
    while len(found) < cluster.primaries:
        tenant = uuid.uuid4().hex
        found.setdefault(cluster.primary_of(f"{{{tenant}}}").port, tenant)
    return found


def test_cluster_urls_are_recognised_and_checked():
    assert is_cluster_url("redis+cluster://10.0.0.1:6379") and is_cluster_url("rediss+cluster://h:6380/0")
    assert not is_cluster_url("redis://h:6379/0")
    assert url_problem("redis+cluster://h:6379") is None and url_problem("unix:///run/redis.sock") is None
    assert "database 0" in url_problem("redis+cluster://h:6379/1")
    assert "expected a" in url_problem("cluster://h:6379")


# -- tenants on every primary -------------------------------------------------------------------


@pytest.fixture
async def store(valkey_cluster):
    exact = RedisExactStore.from_url(valkey_cluster.url, timeout_ms=1000, pool_size=8, **LIMITS)
    yield exact
    await exact.close()


class TestStoreOnCluster:
    async def test_tenants_on_every_primary_keep_all_their_keys_on_their_own_primary(self, store, valkey_cluster):
        tenants = tenant_on_each_primary(valkey_cluster)
        keys = {port: os.urandom(32) for port in tenants}
        for port, tenant in tenants.items():
            await store.put(common_pb2.Scope(tenant=tenant), keys[port], entry(tenant), 0)
        for port, tenant in tenants.items():
            got = await store.get(common_pb2.Scope(tenant=tenant), keys[port], store_pb2.TIER_EXACT)
            assert got.response == entry(tenant).response
            assert (await store.stats(tenant)).hits_exact == 1
            node = next(n for n in valkey_cluster.nodes if n.port == port)
            # entry, index, sizes, tokens, stats and meta records: all on the tenant's primary
            assert len(node.client().keys(f"deja:{{{tenant}}}:*")) == 6
        assert (await totals(store.redis))[0] >= 3


class TestEntryAdminOnCluster:
    async def test_all_tenants_listing_finds_a_tenant_on_every_primary(self, store, valkey_cluster):
        """All-tenant listings find tenants by SCAN, which must visit every primary."""
        exact, admin = store, EntryAdmin(store)
        model = f"listed-{uuid.uuid4().hex[:6]}"
        tenants = tenant_on_each_primary(valkey_cluster)
        for tenant in tenants.values():
            await exact.put(common_pb2.Scope(tenant=tenant), os.urandom(32), entry(model=model), 0)
        listed = await admin.list(store_pb2.EntryFilter(all_tenants=True, model=model), 0)
        assert sorted(e.tenant for e in listed.entries) == sorted(tenants.values())


# -- the embedding cache ---------------------------------------------------------------------


async def test_the_embedding_cache_spreads_over_the_shards_and_reads_back_in_order(valkey_cluster):
    cache = EmbeddingCache(valkey_cluster.url, model_version="m-test", dimension=4, ttl_s=60, timeout_ms=1000)
    texts = [f"text {i} {uuid.uuid4().hex}" for i in range(24)]
    vectors = np.random.default_rng(0).random((len(texts), 4), dtype=np.float32)
    assert await cache.get_many(texts) == [None] * len(texts)
    cache.put_many(texts, vectors)
    await cache.drain()
    found = await cache.get_many([*texts[::-1], "never stored"])
    assert found[-1] is None
    assert all(np.array_equal(v, vectors[len(texts) - 1 - i]) for i, v in enumerate(found[:-1]))
    owners = {valkey_cluster.primary_of(cache.key(t)).port for t in texts}
    assert len(owners) == 3, "24 untagged keys all on one shard"
    assert cache.errors == 0
    await cache.close()


# -- the whole gateway on the cluster ---------------------------------------------------------


def test_exact_and_semantic_hits_through_the_gateway_with_every_redis_user_on_the_cluster(
    valkey_cluster, tmp_path_factory
):
    running = make_cluster(
        tmp_path_factory.mktemp("gateway-on-cluster"),
        semantic=True,
        redis_url=valkey_cluster.url,  # the store (entries, observations, sessions) and the embedding cache
    )
    with running:
        client = sdk(running, "sk-cluster-e2e")
        prompt = unique_prompt()
        assert (
            client.chat.completions.with_raw_response.create(model=MODEL, messages=prompt).headers["x-deja-cache"]
            == "miss"
        )
        assert wait_for_hit(client, model=MODEL, messages=prompt).headers["x-deja-cache"] == "hit-exact"

        answer = learn(client, "How do I reverse a list in Python?", running)
        raw = ask(client, "In Python, how can I reverse a list?")
        assert raw.headers["x-deja-cache"] == "hit-semantic"
        assert raw.parse().choices[0].message.content == answer.choices[0].message.content

    async def embeddings_cached() -> int:
        probe = redis_client(valkey_cluster.url, timeout_ms=1000, pool_size=2)
        try:
            return len([key async for key in probe.scan_iter(match="deja:emb:*", count=1000)])
        finally:
            await probe.aclose()

    assert asyncio.run(embeddings_cached()) >= 2  # the embedder's cache wrote to the cluster
    tenant = blake3.blake3(b"sk-cluster-e2e").hexdigest()
    owner = valkey_cluster.primary_of(f"{{{tenant}}}")
    assert owner.client().exists(f"deja:{{{tenant}}}:idx")


# -- failover ----------------------------------------------------------------------------------


async def test_the_other_shards_answer_while_the_dead_primary_heads_the_clients_map(own_valkey_cluster):
    valkey = own_valkey_cluster
    tenants = tenant_on_each_primary(valkey)
    client = redis_client(valkey.url, timeout_ms=250, pool_size=4)
    for tenant in tenants.values():
        await client.set(f"{{{tenant}}}:k", b"before")
    victim = valkey.nodes[0]
    heir = valkey.replica_of(victim)
    valkey.kill(victim)

    # A call to the dead shard fails and makes the client refresh its slot map, which still lists the
    # dead primary (the replica takes over only after cluster-node-timeout, 1 s here).
    with pytest.raises(redis.exceptions.ConnectionError):
        await client.set(f"{{{tenants[victim.port]}}}:k", b"after")
    # RedisCluster moves each node a call to which fails or times out to the end of its map, and its
    # first primary serves the command table after a refresh. Under load, calls to the healthy
    # primaries time out too, and the dead one comes first: what a loaded client does, done here.
    for node in client.get_primaries():
        if node.port != victim.port:
            client.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
    assert client.get_primaries()[0].port == victim.port
    for port, tenant in tenants.items():
        if port != victim.port:
            assert await client.get(f"{{{tenant}}}:k") == b"before"
            assert await client.set(f"{{{tenant}}}:k", b"after")
    assert valkey.role(heir) == "slave", "the replica took over before the calls: the test proved nothing"
    await client.aclose()


# -- failover under load -----------------------------------------------------------------------


class GatewayLoad(threading.Thread):
    """Chat requests through the gateway, each prompt asked twice (a miss that stores, then usually
    a hit), until stopped; every exception a client sees is kept."""

    def __init__(self, client: openai.OpenAI) -> None:
        super().__init__(daemon=True)
        self.client, self.stop, self.errors, self.responses = client, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.is_set():
            prompt = unique_prompt("What does a failover do?")
            for _ in range(2):
                try:
                    self.client.chat.completions.with_raw_response.create(model=MODEL, messages=prompt)
                    self.responses += 1
                except Exception as exc:  # any error is what the test looks for
                    self.errors.append(repr(exc))


async def test_a_killed_primary_is_replaced_and_nothing_acknowledged_a_second_before_is_lost(
    own_valkey_cluster, own_cluster
):
    valkey = own_valkey_cluster
    gateway = await asyncio.to_thread(own_cluster, redis_url=valkey.url)
    api_key = "sk-failover"
    victim = valkey.primary_of(f"{{{blake3.blake3(api_key.encode()).hexdigest()}}}")
    heir = valkey.replica_of(victim)
    tenants = tenant_on_each_primary(valkey)
    doomed_tenant = tenants[victim.port]

    store = RedisExactStore.from_url(valkey.url, timeout_ms=250, pool_size=16, **LIMITS)
    acknowledged: list[tuple[float, str, bytes]] = []  # (when, tenant, key) of each Put that returned
    # (when, tenant, what it raised or None, seconds) of every call
    outcomes: list[tuple[float, str, Exception | None, float]] = []
    stop = asyncio.Event()

    async def writer(tenant: str) -> None:
        while not stop.is_set():
            key = os.urandom(32)
            for op in ("put", "get"):
                began = time.monotonic()
                try:
                    if op == "put":
                        await store.put(common_pb2.Scope(tenant=tenant), key, entry(), 0)
                        acknowledged.append((time.monotonic(), tenant, key))
                    else:
                        await store.get(common_pb2.Scope(tenant=tenant), key)
                    outcomes.append((began, tenant, None, time.monotonic() - began))
                except Exception as exc:
                    outcomes.append((began, tenant, exc, time.monotonic() - began))
            await asyncio.sleep(0.005)

    load = GatewayLoad(sdk(gateway, api_key))
    load.start()
    writers = [asyncio.create_task(writer(t)) for t in tenants.values()]
    try:
        await asyncio.sleep(2.0)
        killed_at = time.monotonic()
        valkey.kill(victim)
        deadline = killed_at + 20
        # Over when every live node names the promoted replica as the shard's primary (a client that
        # refreshes its slot map from a node the news has not reached yet is still sent to the dead one)
        while valkey.agreed_primary_of(f"{{{doomed_tenant}}}") is not heir:
            assert time.monotonic() < deadline, "the replica was not promoted"
            await asyncio.sleep(0.05)
        promoted_at = time.monotonic()
        # The same store client, never rebuilt, writes to the failed-over shard again.
        while not any(e is None and t == doomed_tenant and when > promoted_at for when, t, e, _ in list(outcomes)):
            assert time.monotonic() < deadline, "the store did not reconnect to the promoted replica"
            await asyncio.sleep(0.05)
        recovered_at = time.monotonic()
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        load.stop.set()
        await asyncio.to_thread(load.join, 30)

    failures = [outcome for outcome in outcomes if outcome[2] is not None]
    errors = {type(error).__name__ for _w, _t, error, _s in failures}

    def listed(some: list[tuple[float, str, Exception, float]]) -> list[str]:
        return [f"{when - killed_at:+.2f}s {'killed shard' if t == doomed_tenant else 'healthy shard'}: "
                f"{error!r} from {(error.__cause__ or error.__context__)!r}"
                for when, t, error, _s in some[:5]]  # fmt: skip

    print(
        f"\nfailover: every node saw the promotion {promoted_at - killed_at:.2f}s after the kill, the store wrote to "
        f"the shard again {recovered_at - killed_at:.2f}s after; {len(outcomes)} store calls, {len(failures)} failed "
        f"(slowest {max((s for *_rest, s in failures), default=0) * 1000:.0f} ms; {sorted(errors)}); "
        f"{load.responses} gateway responses"
    )
    assert load.errors == [], f"the gateway's clients saw errors: {load.errors[:3]}"
    assert load.responses > 20
    assert max(seconds for *_rest, seconds in outcomes) < 1.0, "a call outlived the 250 ms timeout by far"
    assert failures, "the kill went unnoticed: the test did not exercise a failover"
    # what the servicer turns into UNAVAILABLE / DEADLINE_EXCEEDED, which the gateway takes as a miss
    assert errors <= {"ConnectionError", "TimeoutError"}, (errors, listed(failures))
    outside = [f for f in failures if not killed_at - 0.5 <= f[0] <= recovered_at]
    assert outside == [], f"failures outside the failover: {listed(outside)}"
    # The other shards served throughout: a client that reloads its command table from the dead primary
    # after each slot-map refresh (redis-py's own RedisCluster) fails their calls too until the promotion.
    healthy = [f for f in failures if f[1] != doomed_tenant]
    assert healthy == [], f"calls to healthy shards failed: {listed(healthy)}"

    old_enough = [(tenant, key) for when, tenant, key in acknowledged if when < killed_at - 1.0]
    assert sum(tenant == doomed_tenant for tenant, _key in old_enough) > 10
    lost = [key.hex() for tenant, key in old_enough if await store.get(common_pb2.Scope(tenant=tenant), key) is None]
    assert lost == [], f"{len(lost)} of {len(old_enough)} entries acknowledged >1 s before the kill are gone"
    last_second = [(t, k) for when, t, k in acknowledged if killed_at - 1.0 <= when < killed_at and t == doomed_tenant]
    gone = sum([await store.get(common_pb2.Scope(tenant=t), k) is None for t, k in last_second])
    print(f"of {len(last_second)} writes to the killed shard acked in the last second before the kill, {gone} lost")

    # Through the gateway too: its store process reconnected by itself, a repeat is a hit again.
    client = sdk(gateway, api_key)
    prompt = unique_prompt()
    client.chat.completions.create(model=MODEL, messages=prompt)
    assert wait_for_hit(client, model=MODEL, messages=prompt).headers["x-deja-cache"] == "hit-exact"
    await store.close()
