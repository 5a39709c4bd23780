"""The embedder with the real all-MiniLM-L6-v2 ONNX graph: vectors, batching, the Redis cache, gRPC.

`make test` builds the model first (`make models`); run alone without it, this module skips
with a message saying so rather than passing without a model.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import blake3
import numpy as np
import pytest
import redis.asyncio as aioredis
from google.protobuf import text_format

from deja.clients import BadRequest, EmbedderClient
from deja.settings import ConfigError, load
from services.embedder.backends import MODEL_ID, OnnxBackend, file_version, resolve
from services.embedder.batcher import MicroBatcher
from services.embedder.cache import EmbeddingCache
from services.embedder.embedder import Embedder
from services.embedder.main import SERVICE_NAME
from services.embedder.settings import EmbedderSettings
from tests.helpers import embedder_service, in_process, serving
from tools.cluster import free_port
from tools.models.common import EMBEDDER_ONNX

MODEL = resolve(EmbedderSettings.model_path)  # the CPU default: the int8 form of Triton's fp32 graph
TRITON = resolve("deploy/triton/model_repository/embedder")

if not MODEL.is_file():
    pytest.skip(f"no ONNX model at {MODEL}: run `make models` (`make test` builds it first)", allow_module_level=True)

TEXTS = [
    "How do I center a div?",
    "CSS to center a div?",
    "How do I sort a list in descending order?",
    "",
    "x",
    "Explain, with an example, the difference between a process and a thread, and when a Python web "
    "service that handles many concurrent requests should use one or the other.",
]


def unique(text: str) -> str:
    """The session Redis is shared: a fresh text is a guaranteed cache miss."""
    return f"{text} {uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def backend() -> OnnxBackend:
    return OnnxBackend(MODEL, threads=2)


@pytest.fixture(scope="module")
def singles(backend) -> dict[str, np.ndarray]:
    """Each text embedded alone: the reference every batched result must match."""
    return {text: backend.embed([text])[0] for text in TEXTS}


# -- settings --------------------------------------------------------------------------


def test_unknown_backend_and_bad_cache_url_are_refused():
    with pytest.raises(ConfigError, match="DEJA_EMBEDDER_BACKEND"):
        load(EmbedderSettings, {"DEJA_EMBEDDER_BACKEND": "cuda"})
    with pytest.raises(ConfigError, match="DEJA_EMBEDDING_CACHE_URL"):
        load(EmbedderSettings, {"DEJA_EMBEDDING_CACHE_URL": "localhost:6379"})
    assert load(EmbedderSettings, {}).cache_url == ""  # no Redis configured: the cache is off


# -- the model ---------------------------------------------------------------------------


def test_info_names_the_model_and_hashes_the_file(backend):
    info = backend.info
    assert (info.model_id, info.dimension, info.backend) == (MODEL_ID, 384, "onnx")
    assert len(info.model_version) == 16 and info.model_version == file_version(MODEL)


def test_vectors_are_unit_length_and_384_d(backend):
    vectors = backend.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_paraphrase_is_closer_than_another_question(singles):
    div, css, sort = (singles[t] for t in TEXTS[:3])
    assert float(div @ css) > float(div @ sort) + 0.3


def test_batched_results_equal_single_results(backend, singles):
    batched = backend.embed(TEXTS)
    for text, vector in zip(TEXTS, batched, strict=True):
        np.testing.assert_allclose(vector, singles[text], atol=1e-5)


def test_a_call_larger_than_one_run_is_split_by_length_and_kept_in_order(singles):
    small_runs = OnnxBackend(MODEL, threads=2, batch_size=2)
    texts = list(reversed(TEXTS))
    vectors = small_runs.embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, singles[text], atol=1e-5)


def test_runs_are_sorted_by_length_and_bounded_in_rows_and_padded_tokens():
    runs = OnnxBackend._runs(_RunShape(batch_size=3, run_tokens=40), lengths := [30, 5, 12, 6, 7, 50, 8, 9])
    assert sorted(row for run in runs for row in run) == list(range(len(lengths)))
    for run in runs:
        assert [lengths[r] for r in run] == sorted(lengths[r] for r in run)
        assert len(run) <= 3 and (len(run) == 1 or len(run) * lengths[run[-1]] <= 40)
    assert runs == [[1, 3, 4], [6, 7, 2], [0], [5]]


class _RunShape:
    def __init__(self, batch_size: int, run_tokens: int) -> None:
        self._batch_size, self._run_tokens = batch_size, run_tokens


def test_long_texts_are_truncated_not_refused(backend):
    vector = backend.embed(["word " * 2000])
    assert vector.shape == (1, 384) and np.isfinite(vector).all()


# -- micro-batching ----------------------------------------------------------------------


async def test_concurrent_calls_share_model_runs_and_each_caller_gets_its_own_vectors(backend, singles):
    batcher = MicroBatcher(backend, window_ms=5, max_batch=64)
    calls = [[TEXTS[i % len(TEXTS)]] for i in range(12)] + [TEXTS[:3], TEXTS[3:]]
    results = await asyncio.gather(*(batcher.embed(texts) for texts in calls))
    assert batcher.calls == len(calls)
    assert batcher.texts == sum(len(texts) for texts in calls)
    assert batcher.batches < len(calls) // 2, f"{batcher.batches} model runs for {len(calls)} concurrent calls"
    for texts, vectors in zip(calls, results, strict=True):
        assert vectors.shape == (len(texts), 384)
        for text, vector in zip(texts, vectors, strict=True):
            np.testing.assert_allclose(vector, singles[text], atol=1e-5)
    await batcher.close()


async def test_a_batch_never_exceeds_max_batch(backend, singles):
    batcher = MicroBatcher(backend, window_ms=5, max_batch=4)
    calls = [TEXTS[i : i + 3] for i in range(0, 6, 3)] + [[TEXTS[i]] for i in range(6)]
    results = await asyncio.gather(*(batcher.embed(texts) for texts in calls))
    assert batcher.largest_batch <= 4 and batcher.batches >= 3
    for texts, vectors in zip(calls, results, strict=True):
        for text, vector in zip(texts, vectors, strict=True):
            np.testing.assert_allclose(vector, singles[text], atol=1e-5)
    await batcher.close()


async def test_the_event_loop_stays_free_while_the_model_runs(backend):
    batcher = MicroBatcher(backend, window_ms=0, max_batch=64)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await batcher.embed([TEXTS[-1]] * 64)  # tens of milliseconds of inference
    task.cancel()
    assert ticks >= 3, "the event loop was blocked by inference"
    await batcher.close()


# -- the Redis embedding cache -----------------------------------------------------------


def embedder(backend, redis_url: str | None, timeout_ms: int = 200) -> Embedder:
    cache = None
    if redis_url:
        cache = EmbeddingCache(
            redis_url, model_version=backend.info.model_version, dimension=384, ttl_s=60, timeout_ms=timeout_ms
        )
    return Embedder(backend, MicroBatcher(backend, window_ms=1), cache)


@pytest.mark.integration
async def test_the_second_call_is_served_from_redis(backend, redis_url):
    texts = [unique("How do I center a div?"), unique("CSS to center a div?")]
    pipeline = embedder(backend, redis_url)
    first = await pipeline.embed(texts)
    await pipeline.cache.drain()
    assert (pipeline.batcher.texts, pipeline.cache.hits) == (2, 0)

    second = await pipeline.embed([texts[1], texts[0], texts[1]])
    assert pipeline.batcher.texts == 2, "cached texts went to the model again"
    assert pipeline.cache.hits == 3
    np.testing.assert_array_equal(second, first[[1, 0, 1]])

    raw = aioredis.from_url(redis_url)
    key = f"deja:emb:{backend.info.model_version}:{blake3.blake3(texts[0].encode()).hexdigest()}"
    assert len(await raw.get(key)) == 384 * 4 and 0 < await raw.ttl(key) <= 60
    await raw.aclose()
    await pipeline.close()


@pytest.mark.integration
async def test_a_text_repeated_in_one_call_is_embedded_once(backend, redis_url):
    pipeline = embedder(backend, redis_url)
    text = unique("repeated")
    vectors = await pipeline.embed([text, text, text])
    assert pipeline.batcher.texts == 1
    np.testing.assert_array_equal(vectors[0], vectors[2])
    await pipeline.close()


@pytest.mark.integration
async def test_redis_down_still_embeds(backend, singles):
    pipeline = embedder(backend, f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(5):
        vectors = await pipeline.embed(TEXTS[:3])
        np.testing.assert_allclose(vectors, np.stack([singles[t] for t in TEXTS[:3]]), atol=1e-5)
    # the breaker opens after 3 failures: later calls do not even try Redis
    assert 3 <= pipeline.cache.errors < 5
    await pipeline.close()


@pytest.mark.integration
async def test_a_hung_redis_costs_at_most_its_timeout(backend, singles):
    async def accept_and_never_answer(reader, writer):
        await reader.read()  # holds the connection open, replies nothing

    server = await asyncio.start_server(accept_and_never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipeline = embedder(backend, f"redis://127.0.0.1:{port}/0", timeout_ms=50)
    started = time.perf_counter()
    vectors = await pipeline.embed([TEXTS[0]])
    assert time.perf_counter() - started < 1.0
    np.testing.assert_allclose(vectors[0], singles[TEXTS[0]], atol=1e-5)
    assert pipeline.cache.errors >= 1
    await pipeline.close()
    server.close()


# -- through gRPC ------------------------------------------------------------------------


LIMITS = {"DEJA_EMBEDDER_MAX_TEXTS": "8", "DEJA_EMBEDDER_MAX_TEXT_CHARS": "100"}  # small, to be crossed


@pytest.mark.integration
async def test_grpc_round_trip_through_the_typed_client(backend, singles, redis_url):
    port = free_port()
    client = EmbedderClient(f"127.0.0.1:{port}", timeout_s=5.0)
    async with in_process(embedder_service(embedder(backend, redis_url), port, **LIMITS)):
        await serving(client, SERVICE_NAME)

        info = await client.info()
        assert (info.model_id, info.dimension, info.backend) == (MODEL_ID, 384, "onnx")
        assert info.model_version == backend.info.model_version

        vectors, model = await client.embed(TEXTS[:3])
        assert vectors.shape == (3, 384) and model.model_version == info.model_version
        np.testing.assert_allclose(vectors, np.stack([singles[t] for t in TEXTS[:3]]), atol=1e-5)

        results = await asyncio.gather(*(client.embed([t]) for t in TEXTS[:3]))
        for text, (got, _) in zip(TEXTS[:3], results, strict=True):
            np.testing.assert_allclose(got[0], singles[text], atol=1e-5)

        for bad in ([], ["a"] * 9, ["x" * 101]):
            with pytest.raises(BadRequest):
                await client.embed(bad)
        assert not client.breaker.is_open  # bad requests are not the service failing
    await client.close()


# -- the Triton model repository ---------------------------------------------------------


@pytest.mark.parametrize(("config", "kind"), [("config.pbtxt", "KIND_GPU"), ("configs/cpu.pbtxt", "KIND_CPU")])
def test_triton_configs_match_the_exported_graph(backend, config, kind):
    from tritonclient.grpc import model_config_pb2

    parsed = text_format.Parse((TRITON / config).read_text(), model_config_pb2.ModelConfig())
    assert parsed.name == TRITON.name == "embedder" and parsed.platform == "onnxruntime_onnx"
    assert [model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind) for g in parsed.instance_group] == [kind]
    assert parsed.HasField("dynamic_batching") and parsed.max_batch_size >= 1
    session = backend._session
    assert [(i.name, i.type, i.shape[1:]) for i in session.get_inputs()] == [
        (i.name, "tensor(int64)", ["sequence"]) for i in parsed.input
    ]
    assert [list(i.dims) for i in parsed.input] == [[-1], [-1]]
    assert [i.data_type for i in parsed.input] == [model_config_pb2.TYPE_INT64] * 2
    [output] = parsed.output
    assert (output.name, output.data_type, list(output.dims)) == ("embeddings", model_config_pb2.TYPE_FP32, [384])
    assert [o.name for o in session.get_outputs()] == ["embeddings"]
    assert (TRITON / "1" / "model.onnx") == EMBEDDER_ONNX
