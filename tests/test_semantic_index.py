"""The semantic index (L2) on real engines: every behaviour is tested once and run against both
backends (Qdrant's embedded engine on a tmp dir, qdrant-client's in-process engine), the two are
checked to give the same answers on one random data set, and the gRPC service is exercised
through the typed client the gateway uses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import numpy as np
import pytest

from deja.clients import BadRequest, DependencyUnavailable, SemanticIndexClient
from deja.settings import ConfigError, load
from deja.v1 import common_pb2
from services.semantic_index.backend import MAX_K, IndexPoint, InvalidRequest, SearchQuery, now_ms, point_id
from services.semantic_index.edge_backend import EdgeBackend
from services.semantic_index.main import SERVICE_NAME, serve
from services.semantic_index.qdrant_backend import QdrantBackend
from services.semantic_index.settings import SemanticIndexSettings
from tests.helpers import serving, stop_in_process, until_async
from tools.cluster import free_port

HOUR_MS = 3_600_000
V1 = "minilm-v1"


def tenant() -> str:
    return uuid.uuid4().hex


def unit(*components: float, dim: int = 4) -> list[float]:
    vector = np.zeros(dim, dtype=np.float32)
    vector[: len(components)] = components
    return (vector / np.linalg.norm(vector)).tolist()


def point(t: str, ctx: bytes, vector, entry_id: str, **overrides) -> IndexPoint:
    fields = dict(
        tenant=t, namespace="", context_hash=ctx, vector=vector, prompt=f"prompt of {entry_id}", entry_id=entry_id,
        expires_at_ms=now_ms() + HOUR_MS, model_version=V1,
    )  # fmt: skip
    fields.update(overrides)
    return IndexPoint(**fields)


def query(t: str, ctx: bytes, vector, **overrides) -> SearchQuery:
    fields = dict(tenant=t, namespace="", context_hash=ctx, vector=vector, k=10, min_similarity=-1.0, model_version=V1)
    fields.update(overrides)
    return SearchQuery(**fields)


async def ids(backend, q: SearchQuery) -> list[str]:
    return [hit.entry_id for hit in await backend.search(q)]


async def open_backend(kind: str, tmp_path):
    if kind == "edge":
        return EdgeBackend.open(tmp_path / "semantic", workers=2)
    return QdrantBackend(":memory:")


@pytest.fixture(params=["edge", "qdrant"])
async def backend(request, tmp_path):
    index = await open_backend(request.param, tmp_path)
    yield index
    await index.close()


# -- behaviour, identical for both backends -----------------------------------------------------


async def test_nearest_first_with_cosine_similarity(backend):
    t, ctx = tenant(), os.urandom(32)
    await backend.upsert(point(t, ctx, unit(0, 1), "far"))
    await backend.upsert(point(t, ctx, unit(1, 0), "same"))
    await backend.upsert(point(t, ctx, unit(0.8, 0.6), "near"))
    await backend.upsert(point(t, ctx, unit(-1, 0), "opposite"))
    hits = await backend.search(query(t, ctx, [3.0, 0, 0, 0]))  # length does not matter for cosine
    assert [h.entry_id for h in hits] == ["same", "near", "far", "opposite"]
    assert [h.similarity for h in hits] == pytest.approx([1.0, 0.8, 0.0, -1.0], abs=1e-6)
    assert all(-1.0 <= h.similarity <= 1.0 for h in hits)
    assert hits[1].prompt == "prompt of near"


async def test_tenant_namespace_and_context_are_isolated(backend):
    a, b, ctx, other_ctx = tenant(), tenant(), os.urandom(32), os.urandom(32)
    v = unit(1, 0)
    await backend.upsert(point(a, ctx, v, "a-default"))
    await backend.upsert(point(a, ctx, v, "a-docs", namespace="docs"))
    await backend.upsert(point(a, other_ctx, v, "a-other-context"))
    await backend.upsert(point(b, ctx, v, "b-default"))
    assert await ids(backend, query(a, ctx, v)) == ["a-default"]
    assert await ids(backend, query(a, ctx, v, namespace="docs")) == ["a-docs"]
    assert await ids(backend, query(a, other_ctx, v)) == ["a-other-context"]
    assert await ids(backend, query(b, ctx, v)) == ["b-default"]
    assert await ids(backend, query(b, ctx, v, namespace="docs")) == []
    assert await ids(backend, query(tenant(), ctx, v)) == []


async def test_model_versions_never_mix(backend):
    t, ctx = tenant(), os.urandom(32)
    await backend.upsert(point(t, ctx, unit(1, 0), "small"))
    await backend.upsert(point(t, ctx, unit(1, 0, dim=8), "large", model_version="minilm-v2"))
    assert await ids(backend, query(t, ctx, unit(1, 0))) == ["small"]
    assert await ids(backend, query(t, ctx, unit(1, 0, dim=8), model_version="minilm-v2")) == ["large"]
    assert await ids(backend, query(t, ctx, unit(1, 0), model_version="never-indexed")) == []
    # a collection keeps the dimension it was created with
    with pytest.raises(InvalidRequest, match="dimensions"):
        await backend.upsert(point(t, ctx, unit(1, 0, dim=8), "wrong"))
    with pytest.raises(InvalidRequest, match="dimensions"):
        await backend.search(query(t, ctx, unit(1, 0, dim=3)))
    assert await backend.count(t) == 2


async def test_expired_points_are_never_returned_and_purge_removes_them(backend):
    t, ctx, v = tenant(), os.urandom(32), unit(1, 0)
    await backend.upsert(point(t, ctx, v, "expired", expires_at_ms=now_ms() - 1))
    await backend.upsert(point(t, ctx, unit(0.9, 0.1), "live"))
    assert await ids(backend, query(t, ctx, v)) == ["live"]
    assert (await backend.count(t), await backend.count(t, include_expired=True)) == (1, 2)
    assert await backend.purge_expired() == 1
    assert await backend.count(t, include_expired=True) == 1
    assert await backend.purge_expired() == 0


async def test_reupsert_replaces_the_point(backend):
    t, ctx = tenant(), os.urandom(32)
    await backend.upsert(point(t, ctx, unit(1, 0), "e1", prompt="old"))
    await backend.upsert(point(t, ctx, unit(0, 1), "e1", prompt="new"))
    [hit] = await backend.search(query(t, ctx, unit(0, 1)))
    assert (hit.entry_id, hit.prompt, hit.similarity) == ("e1", "new", pytest.approx(1.0, abs=1e-6))
    assert await backend.count(t) == 1


async def test_delete_stays_within_its_scope(backend):
    a, b, ctx, v = tenant(), tenant(), os.urandom(32), unit(1, 0)
    await backend.upsert(point(a, ctx, v, "e1"))
    await backend.upsert(point(a, ctx, v, "e2"))
    await backend.upsert(point(a, ctx, unit(1, 0, dim=8), "e1", model_version="minilm-v2"))
    await backend.upsert(point(a, ctx, v, "e1", namespace="docs"))
    await backend.upsert(point(b, ctx, v, "e1"))
    assert await backend.delete(a, "", ["e1", "never-indexed"]) == 2  # in both model versions
    assert await ids(backend, query(a, ctx, v)) == ["e2"]
    assert await ids(backend, query(a, ctx, v, namespace="docs")) == ["e1"]
    assert await ids(backend, query(b, ctx, v)) == ["e1"]
    assert await backend.delete(a, "", []) == 0
    assert await backend.delete(a, "", ["e1"]) == 0


async def test_drop_tenant_deletes_everything_of_that_tenant_only(backend):
    a, b, ctx, v = tenant(), tenant(), os.urandom(32), unit(1, 0)
    await backend.upsert(point(a, ctx, v, "e1"))
    await backend.upsert(point(a, os.urandom(32), v, "e2", namespace="docs"))
    await backend.upsert(point(a, ctx, unit(1, 0, dim=8), "e3", model_version="minilm-v2"))
    await backend.upsert(point(a, ctx, v, "e4", expires_at_ms=now_ms() - 1))
    await backend.upsert(point(b, ctx, v, "e1"))
    assert await backend.count() == 4  # live points, all tenants
    assert await backend.drop_tenant(a) == 4  # expired-but-not-yet-purged points go too
    assert await backend.count(a, include_expired=True) == 0
    assert await ids(backend, query(b, ctx, v)) == ["e1"]
    assert await backend.drop_tenant(a) == 0


async def test_invalidate_by_entries_namespace_or_tenant(backend):
    a, b, ctx, v = tenant(), tenant(), os.urandom(32), unit(1, 0)
    await backend.upsert(point(a, ctx, v, "e1"))
    await backend.upsert(point(a, ctx, v, "e2"))
    await backend.upsert(point(a, ctx, v, "e1", namespace="docs"))
    await backend.upsert(point(a, ctx, v, "e3", namespace="docs"))
    await backend.upsert(point(a, ctx, unit(1, 0, dim=8), "e1", model_version="minilm-v2"))
    await backend.upsert(point(b, ctx, v, "e1"))
    # an entry in every namespace (feedback names only the entry), in every model version
    assert await backend.invalidate(a, None, ["e1"]) == 3
    assert await ids(backend, query(a, ctx, v)) == ["e2"]
    assert await ids(backend, query(a, ctx, v, namespace="docs")) == ["e3"]
    # a whole namespace
    await backend.upsert(point(a, ctx, v, "e1", namespace="docs"))
    assert await backend.invalidate(a, "docs", []) == 2
    assert await ids(backend, query(a, ctx, v, namespace="docs")) == []
    assert await ids(backend, query(a, ctx, v)) == ["e2"]
    # entries of one namespace only
    await backend.upsert(point(a, ctx, v, "e2", namespace="docs"))
    assert await backend.invalidate(a, "", ["e2"]) == 1
    assert await ids(backend, query(a, ctx, v, namespace="docs")) == ["e2"]
    # the whole tenant; the other tenant keeps its point throughout
    assert await backend.invalidate(a, None, []) == 1
    assert await backend.count(a, include_expired=True) == 0
    assert await ids(backend, query(b, ctx, v)) == ["e1"]


async def test_k_and_min_similarity(backend):
    t, ctx = tenant(), os.urandom(32)
    angles = np.linspace(0, np.pi, MAX_K + 10)  # similarities from 1 down to -1
    for i, angle in enumerate(angles):
        await backend.upsert(point(t, ctx, unit(np.cos(angle), np.sin(angle)), f"e{i:02d}"))
    assert await ids(backend, query(t, ctx, unit(1, 0), k=3)) == ["e00", "e01", "e02"]
    assert len(await backend.search(query(t, ctx, unit(1, 0), k=10_000))) == MAX_K
    above = await backend.search(query(t, ctx, unit(1, 0), k=MAX_K, min_similarity=0.5))
    expected = [f"e{i:02d}" for i, angle in enumerate(angles) if np.cos(angle) >= 0.5]  # none lies near 0.5
    assert [h.entry_id for h in above] == expected and all(h.similarity >= 0.5 for h in above)


async def test_a_first_upsert_cut_off_by_its_deadline_leaves_one_working_collection(backend):
    """The first write of a model version creates its collection; a caller's deadline cancelling
    that write must not leave a half-made collection or a second one behind."""
    t, ctx = tenant(), os.urandom(32)
    first = asyncio.create_task(backend.upsert(point(t, ctx, unit(1, 0), "cut-off")))
    await asyncio.sleep(0)  # the creation is under way
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    await backend.upsert(point(t, ctx, unit(0, 1), "second"))
    await backend.upsert(point(t, ctx, unit(1, 1), "third"))
    found = await ids(backend, query(t, ctx, unit(0, 1)))
    assert found in (["second", "third"], ["second", "third", "cut-off"])  # the cut-off write may have landed


async def test_concurrent_upserts_and_searches(backend):
    t, ctx = tenant(), os.urandom(32)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((100, 16)).astype(np.float32)
    await asyncio.gather(*(backend.upsert(point(t, ctx, v, f"e{i}")) for i, v in enumerate(vectors)))
    results = await asyncio.gather(*(backend.search(query(t, ctx, v, k=1)) for v in vectors[:20]))
    assert [r[0].entry_id for r in results] == [f"e{i}" for i in range(20)]
    assert await backend.count(t) == 100


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(tenant=""), "tenant"),
        (dict(tenant="has:colon"), "tenant"),
        (dict(vector=[]), "empty"),
        (dict(vector=[0.0, 0.0]), "zeros"),
        (dict(vector=[1.0, float("nan")]), "NaN"),
        (dict(vector=[1.0, float("inf")]), "NaN or infinite"),
        (dict(entry_id=""), "entry_id"),
        (dict(model_version=""), "model_version"),
        (dict(model_version="a/b"), "model_version"),
        (dict(context_hash=b"\x00" * 31), "32 bytes"),
        (dict(expires_at_ms=0), "expires_at_ms"),
    ],
)
def test_invalid_points_are_refused(overrides, message):
    with pytest.raises(InvalidRequest, match=message):
        point(tenant(), os.urandom(32), **{"vector": [1.0, 0.0], "entry_id": "e1", **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(k=0), "k must"),
        (dict(min_similarity=1.5), "min_similarity"),
        (dict(min_similarity=float("nan")), "min_similarity"),
        (dict(tenant=""), "tenant"),
        (dict(context_hash=b""), "32 bytes"),
        (dict(vector=[float("nan")]), "NaN"),
        (dict(model_version=""), "model_version"),
    ],
)
def test_invalid_queries_are_refused(overrides, message):
    with pytest.raises(InvalidRequest, match=message):
        query(tenant(), os.urandom(32), **{"vector": [1.0, 0.0], **overrides})


def test_point_ids_are_deterministic_and_scoped():
    assert point_id("t", "", "e1") == point_id("t", "", "e1")
    assert len({point_id("t", "", "e1"), point_id("t", "ns", "e1"), point_id("u", "", "e1")}) == 3
    assert point_id("t", "a\0b", "c") != point_id("t", "a", "b\0c")
    uuid.UUID(point_id("t", "", "e1"))


# -- the two backends agree ---------------------------------------------------------------------


async def test_edge_and_qdrant_give_the_same_answers(tmp_path):
    rng = np.random.default_rng(2024)
    tenants, contexts, namespaces = [tenant() for _ in range(3)], [os.urandom(32) for _ in range(3)], ["", "docs"]
    vectors = rng.standard_normal((360, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = now_ms()

    def exp(i: int) -> int:
        return now - 1 if i % 17 == 0 else now + HOUR_MS

    points = [
        point(tenants[i % 3], contexts[i // 3 % 3], v, f"e{i}", namespace=namespaces[i // 9 % 2], expires_at_ms=exp(i))
        for i, v in enumerate(vectors)
    ]
    queries = [
        query(tenants[j % 3], contexts[(j // 3) % 3], vectors[5 * j] + 0.3 * rng.standard_normal(384),
              namespace=namespaces[j % 2], k=8)
        for j in range(36)
    ]  # fmt: skip
    answers = []
    for kind in ("edge", "qdrant"):
        index = await open_backend(kind, tmp_path)
        for p in points:
            await index.upsert(p)
        results = [await index.search(q) for q in queries]
        counts = [await index.count(t) for t in tenants]
        answers.append((results, counts))
        await index.close()
    (edge, edge_counts), (qdrant, qdrant_counts) = answers
    assert edge_counts == qdrant_counts and sum(edge_counts) == 360 - len(range(0, 360, 17))
    assert sum(len(r) for r in edge) >= 36 * 5  # the comparison is not vacuous
    for edge_hits, qdrant_hits in zip(edge, qdrant, strict=True):
        assert [h.entry_id for h in edge_hits] == [h.entry_id for h in qdrant_hits]
        assert [h.similarity for h in edge_hits] == pytest.approx([h.similarity for h in qdrant_hits], abs=1e-5)
        assert all(int(h.entry_id[1:]) % 17 for h in edge_hits)  # no expired point


# -- edge specifics -----------------------------------------------------------------------------


async def test_edge_data_survives_close_and_reopen(tmp_path):
    t, ctx = tenant(), os.urandom(32)
    index = EdgeBackend.open(tmp_path / "semantic")
    await index.upsert(point(t, ctx, unit(1, 0), "e1"))
    await index.upsert(point(t, ctx, unit(1, 0, dim=8), "e2", model_version="minilm-v2"))
    with pytest.raises(ConfigError, match="in use by another process"):
        EdgeBackend.open(tmp_path / "semantic")
    await index.close()
    reopened = EdgeBackend.open(tmp_path / "semantic")
    assert await ids(reopened, query(t, ctx, unit(1, 0))) == ["e1"]
    assert await ids(reopened, query(t, ctx, unit(1, 0, dim=8), model_version="minilm-v2")) == ["e2"]
    with pytest.raises(InvalidRequest, match="dimensions"):  # the dimension was remembered too
        await reopened.upsert(point(t, ctx, unit(1, 0, dim=8), "e3"))
    await reopened.close()
    assert not await reopened.healthy()


def test_settings_are_checked():
    assert load(SemanticIndexSettings, {}).port == 50053
    with pytest.raises(ConfigError, match="DEJA_SEMANTIC_BACKEND"):
        load(SemanticIndexSettings, {"DEJA_SEMANTIC_BACKEND": "faiss"})
    with pytest.raises(ConfigError, match="DEJA_QDRANT_URL"):
        load(SemanticIndexSettings, {"DEJA_SEMANTIC_BACKEND": "qdrant", "DEJA_QDRANT_URL": "localhost:6333"})


# -- through gRPC -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(settings: SemanticIndexSettings, backend=None):
    """The service in this process on its own port; stopped by the SIGTERM handler it installs."""
    server = asyncio.create_task(serve(settings, backend=backend, probe_interval_s=0.05, grace_s=0.2))
    client = SemanticIndexClient(f"127.0.0.1:{settings.port}", timeout_s=3.0)
    try:
        yield client, server
    finally:
        await stop_in_process(server)
        await client.close()


@pytest.mark.integration
async def test_grpc_round_trip_through_the_typed_client(tmp_path):
    env = {
        "DEJA_SEMANTIC_PORT": str(free_port()),
        "DEJA_SEMANTIC_DATA_DIR": str(tmp_path),
        "DEJA_SEMANTIC_PURGE_INTERVAL_S": "0.1",
    }
    settings = load(SemanticIndexSettings, env)
    backend = EdgeBackend.open(tmp_path)  # what serve() would open; kept here to look behind the service
    async with running(settings, backend) as (client, server):
        await serving(client, SERVICE_NAME)
        scope, ctx = common_pb2.Scope(tenant=tenant()), os.urandom(32)
        later = now_ms() + HOUR_MS
        await client.upsert(scope, ctx, unit(1, 0), "how do I center a div?", "e1", later, V1)
        await client.upsert(scope, ctx, unit(0.6, 0.8), "what is flexbox?", "e2", later, V1)
        await client.upsert(scope, ctx, unit(0, 1), "gone soon", "e3", now_ms() + 150, V1)
        hits = await client.search(scope, ctx, unit(1, 0), k=5, min_similarity=0.5, model_version=V1)
        assert [(h.entry_id, h.prompt) for h in hits] == [("e1", "how do I center a div?"), ("e2", "what is flexbox?")]
        assert hits[1].similarity == pytest.approx(0.6, abs=1e-6)
        stats = await client.stats(scope.tenant)
        assert (stats.points, stats.backend) == (3, "edge")

        # the background task deletes e3 once it has expired
        await until_async(lambda: _equals(backend.count(scope.tenant, include_expired=True), 2), "e3 purged", 5)
        assert (await client.stats()).points == 2

        with pytest.raises(BadRequest, match="k must"):
            await client.search(scope, ctx, unit(1, 0), k=0, min_similarity=0.0, model_version=V1)
        with pytest.raises(BadRequest, match="tenant"):
            await client.upsert(common_pb2.Scope(tenant=""), ctx, unit(1, 0), "p", "e9", later, V1)
        with pytest.raises(BadRequest, match="dimensions"):
            await client.upsert(scope, ctx, unit(1, 0, dim=8), "p", "e9", later, V1)
        assert await client.delete(scope, ["e2"]) == 1
        assert await client.invalidate(scope.tenant, "", ["e1"]) == 1
        await client.upsert(scope, ctx, unit(1, 0), "how do I center a div?", "e1", later, V1)
        with pytest.raises(BadRequest, match="tenant"):
            await client.invalidate("")
        assert await client.drop_tenant(scope.tenant) == 1
        assert (await client.stats()).points == 0

        await stop_in_process(server)
        with pytest.raises(DependencyUnavailable):  # what the gateway treats as a miss
            await client.stats()
    # stopping closed the backend and released the directory: it opens again
    assert not await backend.healthy()
    await EdgeBackend.open(tmp_path).close()


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


@pytest.mark.integration
async def test_unreachable_qdrant_is_not_serving_and_unavailable():
    env = {
        "DEJA_SEMANTIC_PORT": str(free_port()),
        "DEJA_SEMANTIC_BACKEND": "qdrant",
        "DEJA_QDRANT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "DEJA_QDRANT_TIMEOUT_S": "1",
    }
    async with running(load(SemanticIndexSettings, env)) as (client, _server):

        async def not_serving() -> bool:
            try:
                await asyncio.wait_for(client.channel.channel_ready(), 0.5)
            except Exception:
                return False
            return not await client.serving(SERVICE_NAME) and await client.serving("")  # "" = liveness: stays up

        await until_async(not_serving, "NOT_SERVING", 5)
        scope, ctx = common_pb2.Scope(tenant=tenant()), os.urandom(32)
        with pytest.raises(DependencyUnavailable, match="UNAVAILABLE qdrant unavailable"):
            await client.search(scope, ctx, unit(1, 0), k=5, min_similarity=0.0, model_version=V1)
        with pytest.raises(BadRequest):  # validation still answers without the backend
            await client.search(scope, ctx, unit(1, 0), k=0, min_similarity=0.0, model_version=V1)
