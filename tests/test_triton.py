"""The triton backends against a REAL Triton server (nvidia-pytriton's tritonserver in .venv-triton,
CPU configs of deploy/triton/model_repository): congruence with the ONNX Runtime backends, model
versions, errors (server gone, deadline), the embedder service end to end and a whole cluster."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from deja.clients import DependencyTimeout, DependencyUnavailable, EmbedderClient
from deja.clients.triton import VERSION_PARAMETER, TritonModel
from deja.settings import ConfigError, load
from services.embedder import triton_backend
from services.embedder.backends import create_backend, file_version
from services.embedder.settings import EmbedderSettings
from services.verifier import triton_scorer
from services.verifier.onnx_scorer import OnnxPairScorer
from services.verifier.scorer import load_scorer, model_version
from services.verifier.settings import VerifierSettings
from tests.helpers import (
    embedder_service,
    in_process,
    make_cluster,
    missing_edges,
    sdk,
    semantic_points,
    serving,
    settled,
    until,
    upstream_calls,
)
from tools.cluster import free_port
from tools.triton_server import MODEL_REPOSITORY, TritonServer

TEXTS = [
    "How do I center a div?",
    "a",
    "",
    "Wie zentriere ich ein div-Element mit CSS?",
    "日本語で質問します。リストを逆順に並べ替えるには",
    "emoji 🎉🚀 and accents: café, naïve, São Paulo",
    "Explain the difference between a process and a thread. " * 80,  # truncated to 256 tokens
    *(f"question {i}: how do I {'really ' * (i % 23)}sort a list of {i} numbers in Python?" for i in range(150)),
]  # 157 texts: runs of several bucket widths, some of more than the model's max_batch_size (64) texts

QUERY = "How do I sort a list in ascending order?"
CANDIDATES = [
    "How do I sort a list in descending order?",  # the trap: same words, opposite intent
    "sort a list ascending in python",
    "What is the capital of France?",
    "How do I sort a list in ascending order?",
    "Explain how quicksort partitions an array around a pivot element, step by step.",
]


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = TritonServer(grpc_port=free_port(), http_port=0, metrics_port=0)
    server.start(log_path=log)
    yield server
    server.stop()


def embedder_settings(url: str, **env: str) -> EmbedderSettings:
    return load(EmbedderSettings, {"DEJA_EMBEDDER_BACKEND": "triton", "DEJA_EMBEDDER_TRITON_URL": url, **env})


def verifier_settings(url: str) -> VerifierSettings:
    return load(VerifierSettings, {"DEJA_VERIFIER_BACKEND": "triton", "DEJA_VERIFIER_TRITON_URL": url})


@pytest.fixture(scope="module")
def onnx_embedder():
    fp32 = MODEL_REPOSITORY / "embedder/1/model.onnx"  # the file Triton serves, not the int8 CPU default
    return create_backend(load(EmbedderSettings, {"DEJA_EMBEDDER_MODEL_PATH": str(fp32)}))


@pytest.fixture(scope="module")
def triton_embedder(triton):
    # more texts per call than the model's max_batch_size (64): the backend must cut requests to fit
    # (and a deadline for a busy shared CI machine: this test is about the numbers, not the clock)
    settings = embedder_settings(
        triton.grpc_url, DEJA_EMBEDDER_MAX_BATCH="256", DEJA_EMBEDDER_TRITON_TIMEOUT_MS="30000"
    )
    return triton_backend.create(settings)


# -- the model repository (no server) ----------------------------------------------------


def configs(model: str) -> list[model_config_pb2.ModelConfig]:
    paths = [MODEL_REPOSITORY / model / "config.pbtxt", MODEL_REPOSITORY / model / "configs" / "cpu.pbtxt"]
    return [text_format.Parse(p.read_text(), model_config_pb2.ModelConfig()) for p in paths]


@pytest.mark.parametrize("model", ["embedder", "verifier", "verifier-fp32"])
def test_every_config_carries_the_version_of_its_model_file(model):
    version = model_version(MODEL_REPOSITORY / model / "1")  # the graph and its external-data files
    for config in configs(model):
        assert config.name == model and config.platform == "onnxruntime_onnx"
        assert config.parameters[VERSION_PARAMETER].string_value == version


@pytest.mark.parametrize(("model", "folder"), [("verifier", ""), ("verifier-fp32", "fp32")])
def test_verifier_configs_match_its_graph_and_batch_only_independent_rows(model, folder):
    settings = load(VerifierSettings, {})
    scorer = OnnxPairScorer(settings.resolved_model_dir() / folder, model_id=settings.resolved_model_id())
    assert scorer.info.model_version == model_version(MODEL_REPOSITORY / model / "1")
    gpu, cpu = configs(model)
    kinds = [model_config_pb2.ModelInstanceGroup.Kind.Name(c.instance_group[0].kind) for c in (gpu, cpu)]
    assert kinds == ["KIND_GPU", "KIND_CPU"]
    graph = scorer._session
    for config in (gpu, cpu):
        assert [i.name for i in config.input] == [i.name for i in graph.get_inputs()]
        assert [o.name for o in config.output] == [o.name for o in graph.get_outputs()] == ["logits"]
        # Triton merges concurrent requests only under dynamic batching; rows that move each other
        # (the int8 model) would then get scores that depend on strangers' requests.
        assert config.HasField("dynamic_batching") <= scorer.batches_candidates


# -- congruence with the ONNX Runtime backends -------------------------------------------


@pytest.mark.integration
def test_embeddings_match_the_onnx_backend(onnx_embedder, triton_embedder):
    expected, got = onnx_embedder.embed(TEXTS), triton_embedder.embed(TEXTS)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(expected * got, axis=1))) >= 0.9999
    # a text's vector does not depend on the call it came in (bucket padding, run cuts)
    alone = triton_embedder.embed([TEXTS[6]])[0]
    assert float(alone @ got[6]) >= 0.9999
    assert triton_embedder.embed([]).shape == (0, 384)


@pytest.mark.integration
def test_concurrent_requests_merged_by_the_dynamic_batcher_still_match(triton, onnx_embedder, triton_embedder):
    from concurrent.futures import ThreadPoolExecutor

    import tritonclient.grpc as grpcclient

    def counts() -> tuple[int, int]:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        [stats] = client.get_inference_statistics("embedder", as_json=True)["model_stats"]
        client.close()
        return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))

    texts = [f"How do I sort {i} numbers in Python?" for i in range(48)]  # one bucket width: mergeable
    before = counts()
    with ThreadPoolExecutor(16) as pool:
        vectors = np.concatenate(list(pool.map(lambda text: triton_embedder.embed([text]), texts)))
    inferences, executions = settled(  # Triton updates its statistics just after it answers
        lambda: [after - first for after, first in zip(counts(), before, strict=True)],
        lambda got: got[0] >= len(texts),
        timeout_s=5,
    )
    assert inferences == len(texts) and executions < inferences  # Triton ran several requests as one
    assert float(np.min(np.sum(vectors * onnx_embedder.embed(texts), axis=1))) >= 0.9999


@pytest.mark.integration
def test_the_same_model_file_has_the_same_version_in_both_backends(onnx_embedder, triton_embedder):
    onnx, triton = onnx_embedder.info, triton_embedder.info
    assert (triton.model_id, triton.dimension, triton.backend) == (onnx.model_id, 384, "triton")
    assert triton.model_version == onnx.model_version == file_version(MODEL_REPOSITORY / "embedder/1/model.onnx")


@pytest.mark.integration
def test_verifier_scores_match_the_onnx_backend(triton):
    settings = verifier_settings(triton.grpc_url)
    onnx, remote = load_scorer(load(VerifierSettings, {})), triton_scorer.create(settings)
    assert remote.info.backend == "triton" and remote.info.model_version == onnx.info.model_version
    assert remote.info.model_id == onnx.info.model_id
    assert remote.batches_candidates == onnx.batches_candidates  # the same probe, through Triton
    expected, got = onnx.score(QUERY, CANDIDATES), remote.score(QUERY, CANDIDATES)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    np.testing.assert_allclose(remote.score(CANDIDATES[0], [QUERY]), got[:1], atol=1e-6)  # symmetric
    assert remote.score(QUERY, []).shape == (0,)


@pytest.mark.integration
def test_the_fp32_verifier_scores_through_triton_as_in_onnx_runtime(triton):
    """What GPU nodes serve: the fp32 export with its external-data files, its own calibration."""
    env = {"DEJA_VERIFIER_MODEL_DIR": str(load(VerifierSettings, {}).resolved_model_dir() / "fp32")}
    settings = load(
        VerifierSettings,
        {**env, "DEJA_VERIFIER_BACKEND": "triton", "DEJA_VERIFIER_TRITON_URL": triton.grpc_url,
         "DEJA_VERIFIER_TRITON_MODEL": "verifier-fp32"},
    )  # fmt: skip
    onnx, remote = load_scorer(load(VerifierSettings, env)), triton_scorer.create(settings)
    assert (
        remote.info.model_version
        == onnx.info.model_version
        != load_scorer(load(VerifierSettings, {})).info.model_version
    )
    assert remote.batches_candidates and onnx.batches_candidates
    expected, got = onnx.score(QUERY, CANDIDATES), remote.score(QUERY, CANDIDATES)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert got[0] < 0.5 < got[3]  # the trap is refused, the same question accepted


@pytest.mark.integration
def test_a_model_dir_that_does_not_hold_the_served_model_is_refused(triton, tmp_path):
    shutil.copy(load(VerifierSettings, {}).resolved_model_dir() / "tokenizer.json", tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"another model")  # its tokenizer/calibration would be applied
    settings = load(
        VerifierSettings, {"DEJA_VERIFIER_TRITON_URL": triton.grpc_url, "DEJA_VERIFIER_MODEL_DIR": str(tmp_path)}
    )
    with pytest.raises(ConfigError, match="DEJA_VERIFIER_MODEL_DIR"):
        triton_scorer.create(settings)


# -- errors --------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_tiny_deadline_is_a_timeout(triton):
    model = TritonModel(triton.grpc_url, "embedder", timeout_s=5.0, tracer="test")
    backend = triton_backend.TritonBackend(model)
    model.timeout_s = 1e-6
    with pytest.raises(DependencyTimeout):
        backend.embed(["a deadline nobody can meet"])
    model.timeout_s = 5.0
    assert backend.embed(["the same client recovers"]).shape == (1, 384)


@pytest.mark.integration
def test_a_stopped_server_is_unavailable_at_once_and_a_restarted_one_is_used_again(tmp_path):
    server = TritonServer(grpc_port=free_port(), http_port=0, metrics_port=0, models=("embedder",))
    server.start(log_path=tmp_path / "tritonserver.log")
    try:
        backend = triton_backend.create(embedder_settings(server.grpc_url, DEJA_EMBEDDER_TRITON_TIMEOUT_MS="5000"))
        before = backend.embed(["still here?"])
        server.stop()
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            backend.embed(["still here?"])
        assert time.monotonic() - started < 1.0  # refused, not waited out: far under the 5 s deadline
        server.start(log_path=tmp_path / "tritonserver.log")
        deadline = time.monotonic() + 10
        while True:  # the long-lived client reconnects (backoff capped at 1 s)
            try:
                after = backend.embed(["still here?"])
                break
            except DependencyUnavailable:
                assert time.monotonic() < deadline, "the client never reconnected"
                time.sleep(0.1)
        np.testing.assert_allclose(after, before, atol=1e-6)
    finally:
        server.stop()


@pytest.mark.integration
def test_an_unreachable_server_at_start_up_is_a_configuration_error():
    with pytest.raises(ConfigError, match="DEJA_EMBEDDER_TRITON_URL"):
        triton_backend.create(embedder_settings(f"127.0.0.1:{free_port()}"))
    with pytest.raises(ConfigError, match="DEJA_VERIFIER_TRITON_URL"):
        triton_scorer.create(verifier_settings(f"127.0.0.1:{free_port()}"))


# -- the services --------------------------------------------------------------------------


@pytest.mark.integration
async def test_the_embedder_service_on_triton_end_to_end(triton, onnx_embedder):
    from services.embedder.main import SERVICE_NAME, build

    pipeline = build(embedder_settings(triton.grpc_url))
    port = free_port()
    client = EmbedderClient(f"127.0.0.1:{port}", timeout_s=10.0)
    async with in_process(embedder_service(pipeline, port)):
        await serving(client, SERVICE_NAME)
        info = await client.info()
        assert (info.backend, info.model_version) == ("triton", onnx_embedder.info.model_version)
        texts = [text for text in TEXTS[:12] if len(text) <= 100][:8]
        vectors, model = await client.embed(texts)
        assert model.backend == "triton"
        assert float(np.min(np.sum(vectors * onnx_embedder.embed(texts), axis=1))) >= 0.9999

        # Triton's timeout reaches the caller as a timeout (DEADLINE_EXCEEDED), not as an embedder bug
        pipeline.backend.model.timeout_s = 1e-6
        with pytest.raises(DependencyTimeout):
            await client.embed(["this one cannot make it"])
    await client.close()


def test_dependency_failures_keep_their_meaning_as_grpc_status():
    from deja.clients.triton import TritonBadResponse, TritonTimeout, TritonUnavailable
    from deja.grpc_errors import failure_status

    assert failure_status(TritonTimeout("slow")) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert failure_status(TritonUnavailable("down")) == grpc.StatusCode.UNAVAILABLE
    assert failure_status(TritonBadResponse("odd")) == grpc.StatusCode.INTERNAL
    assert failure_status(ValueError("bug")) == grpc.StatusCode.INTERNAL


@pytest.mark.integration
def test_a_cluster_on_triton_serves_a_verified_semantic_hit_in_one_trace(tmp_path, otlp_receiver):
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with make_cluster(tmp_path, semantic=True, backend="triton", extra_env=otel) as running:
        client = sdk(running, "sk-triton-cluster")
        trace_id = secrets.token_hex(16)

        def ask(question: str):
            messages = [{"role": "user", "content": question}]
            # our own traceparent, so the test knows which trace the request lands in
            headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            return client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages, extra_headers=headers
            )

        # The answer is stored and then indexed after the response: wait for its point in the index,
        # so the rewording can only match this entry (a rewording asked too early would miss and be
        # cached itself, and a later one could then be served *that* answer).
        before = semantic_points(running, client.api_key)
        first = ask("How do I center a div horizontally with CSS?")
        assert first.headers["x-deja-cache"] == "miss"
        until(lambda: semantic_points(running, client.api_key) > before, "the answer indexed", 30)

        question = "How can I horizontally center a div using CSS?"
        raw = ask(question)
        assert raw.headers["x-deja-cache"] == "hit-semantic"
        assert raw.headers["x-deja-entry"] == first.headers["x-deja-entry"]  # the first question's entry
        assert float(raw.headers["x-deja-verifier-score"]) >= 0.5
        assert raw.parse().choices[0].message.content == first.parse().choices[0].message.content
        calls = upstream_calls(running)
        assert ask(question).headers["x-deja-cache"].startswith("hit-")
        assert upstream_calls(running) == calls
        assert running.procs["triton"].running
        # The models' Triton calls sit in the request's trace, under the inference spans.
        edges = [
            ("deja-embedder", "embedder.infer", "deja-embedder", "triton.infer"),
            ("deja-verifier", "verifier.score", "deja-verifier", "triton.infer"),
        ]
        spans = otlp_receiver.wait_for(trace_id, lambda spans: not missing_edges(spans, edges))
        assert not missing_edges(spans, edges), sorted({(s.service, s.name) for s in spans})

        # Triton gone: the embedder and verifier say NOT_SERVING (readiness), and requests still work.
        running.kill("triton")
        until(
            lambda: not asyncio.run(_serving(f"127.0.0.1:{running.embedder_port}")),
            "the embedder NOT_SERVING without Triton",
            interval_s=0.2,
        )
        assert ask("What is the capital of Australia?").status_code == 200


async def _serving(addr: str) -> bool:
    client = EmbedderClient(addr, timeout_s=2)
    try:
        return await client.serving(EmbedderClient.SERVICE)
    finally:
        await client.close()
