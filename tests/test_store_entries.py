"""Listing, invalidation by filter and feedback counters of the exact cache, on a real Redis-protocol
server: directly (EntryAdmin) and through the store's gRPC service with the typed client."""

import asyncio
import os
import uuid

import pytest
import redis.asyncio as aioredis

from deja.clients import BadRequest, StoreClient
from deja.v1 import common_pb2, store_pb2
from services.store.entries import EntryAdmin, InvalidFilter
from services.store.main import SERVICE_NAME
from services.store.redis_store import RedisExactStore
from tests.helpers import in_process, on_every_redis, serving, store_service
from tools.cluster import free_port

pytestmark = pytest.mark.integration

LIMITS = dict(default_ttl_s=60, max_ttl_s=3600, max_entry_bytes=8192)


def entry(model: str = "gpt-4o-mini", prompt: str = "How do I center a div?") -> store_pb2.CacheEntry:
    return store_pb2.CacheEntry(
        api_format="openai.chat.completions", model=model, prompt=prompt, response=b'{"answer": 1}',
        usage=common_pb2.Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
    )  # fmt: skip


def where(tenant: str, namespace: str = "") -> common_pb2.Scope:
    return common_pb2.Scope(tenant=tenant, namespace=namespace)


def only(tenant: str = "", **fields) -> store_pb2.EntryFilter:
    return store_pb2.EntryFilter(tenant=tenant, **fields)


@pytest.fixture
async def store(any_redis_url):
    exact = RedisExactStore.from_url(any_redis_url, timeout_ms=1000, pool_size=8, **LIMITS)
    yield exact, EntryAdmin(exact)
    await exact.close()


async def fill(exact: RedisExactStore, tenant: str) -> dict[str, bytes]:
    """Five entries, written a few milliseconds apart (so "newest first" has one answer)."""
    keys = {name: os.urandom(32) for name in ("a", "b", "docs", "claude", "old")}
    for name, ns, item, ttl in (
        ("a", "", entry(prompt="How do I center a div?"), 0),
        ("b", "", entry(prompt="What is the latest Django release?"), 0),
        ("docs", "docs", entry(prompt="How do I center a div?"), 0),
        ("claude", "", entry(model="claude-sonnet-4-5", prompt="Explain SSE"), 0),
        ("old", "", entry(prompt="gone soon"), 1),
    ):
        await exact.put(where(tenant, ns), keys[name], item, ttl)
        await asyncio.sleep(0.003)
    return keys


@on_every_redis
async def test_list_is_newest_first_with_what_each_entry_is(store):
    exact, admin = store
    tenant = uuid.uuid4().hex
    keys = await fill(exact, tenant)
    listed = await admin.list(only(tenant), 0)
    assert listed.matched == 5
    assert [e.entry_id for e in listed.entries] == [keys[n].hex() for n in ("old", "claude", "docs", "b", "a")]
    docs = next(e for e in listed.entries if e.entry_id == keys["docs"].hex())
    assert (docs.namespace, docs.model, docs.prompt, docs.api_format) == (
        "docs", "gpt-4o-mini", "How do I center a div?", "openai.chat.completions"
    )  # fmt: skip
    assert docs.size_bytes > 0 and docs.expires_at_ms > docs.created_at_ms > 0
    assert (await admin.list(only(tenant), 2)).entries[1].entry_id == keys["claude"].hex()
    await asyncio.sleep(1.1)
    assert (await admin.list(only(tenant), 0)).matched == 4  # expired entries are not listed


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (dict(namespace="docs"), {"docs"}),
        (dict(namespace=""), {"a", "b", "claude", "old"}),
        (dict(model="claude-sonnet-4-5"), {"claude"}),
        (dict(prompt_contains="CENTER a DIV"), {"a", "docs"}),
        (dict(prompt_contains="center", namespace=""), {"a"}),
        (dict(model="gpt-4o-mini", prompt_contains="django"), {"b"}),
        (dict(), {"a", "b", "docs", "claude", "old"}),
    ],
)
@on_every_redis
async def test_invalidate_by_filter_deletes_exactly_the_matching_entries(store, fields, expected):
    exact, admin = store
    tenant, bystander = uuid.uuid4().hex, uuid.uuid4().hex
    keys = await fill(exact, tenant)
    other = await fill(exact, bystander)
    dry = await admin.invalidate(only(tenant, **fields), dry_run=True)
    assert {e.entry_id for e in dry} == {keys[n].hex() for n in expected}
    assert (await exact.stats(tenant)).entries == 5  # a dry run deletes nothing
    removed = await admin.invalidate(only(tenant, **fields), dry_run=False)
    assert {e.entry_id for e in removed} == {keys[n].hex() for n in expected}
    for name, key in keys.items():
        ns = "docs" if name == "docs" else ""
        assert (await exact.get(where(tenant, ns), key) is None) == (name in expected)
    stats = await exact.stats(tenant)
    assert stats.entries == 5 - len(expected)
    assert (await exact.stats(bystander)).entries == 5  # another tenant is never touched
    for name, key in other.items():
        assert await exact.get(where(bystander, "docs" if name == "docs" else ""), key) is not None


@on_every_redis
async def test_invalidate_by_entry_id_finds_it_in_any_namespace_unless_one_is_named(store):
    exact, admin = store
    tenant, key = uuid.uuid4().hex, os.urandom(32)
    await exact.put(where(tenant), key, entry(), 0)
    await exact.put(where(tenant, "docs"), key, entry(), 0)
    removed = await admin.invalidate(only(tenant, entry_ids=[key.hex()], namespace="docs"), dry_run=False)
    assert [e.namespace for e in removed] == ["docs"]
    assert await exact.get(where(tenant), key) is not None
    assert len(await admin.invalidate(only(tenant, entry_ids=[key.hex()]), dry_run=False)) == 1
    assert (await exact.stats(tenant)).entries == 0 and (await exact.stats(tenant)).bytes == 0


@on_every_redis
async def test_all_tenants_by_model(store):
    exact, admin = store
    model = f"retired-{uuid.uuid4().hex[:6]}"
    tenants = [uuid.uuid4().hex for _ in range(3)]
    for t in tenants:
        await exact.put(where(t), os.urandom(32), entry(model=model), 0)
        await exact.put(where(t), os.urandom(32), entry(), 0)
    removed = await admin.invalidate(store_pb2.EntryFilter(all_tenants=True, model=model), dry_run=False)
    assert sorted(e.tenant for e in removed) == sorted(tenants)
    assert [(await exact.stats(t)).entries for t in tenants] == [1, 1, 1]


async def test_entries_written_before_the_meta_record_are_still_found_by_tenant_namespace_and_id(store, redis_url):
    exact, admin = store
    tenant, key = uuid.uuid4().hex, os.urandom(32)
    await exact.put(where(tenant, "docs"), key, entry(), 0)
    raw = aioredis.from_url(redis_url)
    await raw.delete(f"deja:{{{tenant}}}:meta")
    await raw.aclose()
    assert await admin.invalidate(only(tenant, model="gpt-4o-mini"), dry_run=True) == []  # needs the record
    [found] = await admin.invalidate(only(tenant, namespace="docs", entry_ids=[key.hex()]), dry_run=False)
    assert found.entry_id == key.hex()
    assert await exact.get(where(tenant, "docs"), key) is None


@pytest.mark.parametrize(
    "bad",
    [
        store_pb2.EntryFilter(),
        store_pb2.EntryFilter(tenant="t", all_tenants=True),
        store_pb2.EntryFilter(tenant="has:colon"),
        store_pb2.EntryFilter(tenant="t", entry_ids=["not-hex"]),
        store_pb2.EntryFilter(tenant="t", prompt_contains="x" * 1001),
    ],
)
async def test_malformed_filters_are_refused(store, bad):
    with pytest.raises(InvalidFilter):
        await store[1].list(bad, 0)


async def test_feedback_counters_and_stats_through_grpc(redis_url):
    port = free_port()
    client = StoreClient(f"127.0.0.1:{port}", timeout_s=2.0)
    async with in_process(store_service(redis_url, port, **LIMITS)):
        await serving(client, SERVICE_NAME)
        tenant, key = uuid.uuid4().hex, os.urandom(32)
        await client.put(where(tenant), key, entry(prompt="long " * 400))
        [listed] = (await client.list_entries(only(tenant))).entries
        assert len(listed.prompt) == 1000  # the prompt is kept, capped
        await client.record_feedback(tenant, key.hex(), correct=False)
        await client.record_feedback(tenant, key.hex(), correct=False)
        await client.record_feedback(tenant, key.hex(), correct=True)
        stats = await client.stats(tenant)
        assert (stats.feedback_incorrect, stats.feedback_correct) == (2, 1)
        with pytest.raises(BadRequest, match="entry_id"):
            await client.record_feedback(tenant, "nope", correct=False)
        with pytest.raises(BadRequest, match="tenant"):
            await client.invalidate(store_pb2.EntryFilter())
        assert [e.entry_id for e in await client.invalidate(only(tenant))] == [key.hex()]
        assert await client.get(where(tenant), key) is None
    await client.close()
