"""The verifier (L3) with its real ONNX model: scorer properties, settings, and the gRPC service
through the typed client the gateway uses. The default model is the trained same-intent verifier;
its quality is measured by `make eval` and pinned in test_verifier_model.py, so these tests pin
pipeline properties."""

import asyncio

import blake3
import numpy as np
import pytest

from deja.clients import BadRequest, DependencyUnavailable, VerifierClient
from deja.settings import ConfigError, load
from deja.v1 import verifier_pb2, verifier_pb2_grpc
from services.verifier.main import SERVICE_NAME, serve
from services.verifier.scorer import load_scorer
from services.verifier.settings import BUNDLED_MODEL_ID, VerifierSettings
from tests.helpers import serving, stop_in_process
from tools.cluster import free_port

QUERY = "How do I center a div?"
PARAPHRASE = "How can I center a div?"
UNRELATED = "What is the capital of France?"


@pytest.fixture(scope="module")
def scorer():
    return load_scorer(load(VerifierSettings, {}))


def test_probabilities_are_in_unit_interval_and_follow_the_candidates_order(scorer):
    candidates = [PARAPHRASE, UNRELATED, "center a div", "How do I sort a list in Python?"]
    probs = scorer.score(QUERY, candidates)
    assert probs.dtype == np.float32 and probs.shape == (4,)
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_array_equal(scorer.score(QUERY, candidates[::-1]), probs[::-1])
    assert scorer.score(QUERY, []).shape == (0,)


@pytest.mark.parametrize(
    ("a", "b"),
    [(QUERY, PARAPHRASE), ("sort a list", "How do I sort a list of dictionaries by a key in Python 3?")],
)
def test_scores_are_symmetric(scorer, a, b):
    assert abs(float(scorer.score(a, [b])[0]) - float(scorer.score(b, [a])[0])) <= 1e-6


def test_a_paraphrase_scores_higher_than_an_unrelated_question(scorer):
    paraphrase, unrelated = scorer.score(QUERY, [PARAPHRASE, UNRELATED])
    assert paraphrase > 0.5 > unrelated


def test_a_batch_scores_each_candidate_as_if_it_came_alone(scorer):
    candidates = [PARAPHRASE, UNRELATED, "css", "How do I vertically align text inside a flexbox container in CSS?"]
    batch = scorer.score(QUERY, candidates)
    alone = np.array([scorer.score(QUERY, [c])[0] for c in candidates])
    np.testing.assert_allclose(batch, alone, atol=1e-5, rtol=0)
    # The default (trained) model is statically quantized: fixed activation scales, so its rows are
    # independent and every candidate goes in one inference call.
    assert scorer.batches_candidates is True


def test_a_dynamically_quantized_model_scores_each_candidate_in_its_own_call():
    # ms-marco's int8 picks one activation scale per batch: its rows are not independent, so the scorer
    # makes one call per candidate to keep a candidate's score independent of its companions.
    ms_marco = load_scorer(load(VerifierSettings, {"DEJA_VERIFIER_MODEL_DIR": "ms-marco"}))
    assert ms_marco.batches_candidates is False
    candidates = [PARAPHRASE, UNRELATED, "How do I vertically align text inside a flexbox container in CSS?"]
    batch = ms_marco.score(QUERY, candidates)
    alone = np.array([ms_marco.score(QUERY, [c])[0] for c in candidates])
    np.testing.assert_allclose(batch, alone, atol=1e-5, rtol=0)


def test_the_relevance_model_calls_ascending_and_descending_the_same_the_default_verifier_does_not(scorer):
    # The packaged ms-marco *relevance* model (still selectable) scores this trap p ~ 0.999; the
    # trained same-intent model that is the default must keep it far below the threshold.
    ms_marco = load_scorer(load(VerifierSettings, {"DEJA_VERIFIER_MODEL_DIR": "ms-marco"}))
    assert float(ms_marco.score("sort a list ascending", ["sort a list descending"])[0]) > 0.9
    assert float(scorer.score("sort a list ascending", ["sort a list descending"])[0]) < 0.5


def test_text_longer_than_the_token_budget_is_truncated_not_an_error(scorer):
    long = "Explain how to center a div. " * 200  # ~1,200 tokens against a 256-token pair budget
    [p] = scorer.score(QUERY, [long])
    assert 0.0 <= p <= 1.0


def test_info_names_the_model_and_hashes_the_weights_served(scorer):
    settings = load(VerifierSettings, {})
    weights = (settings.resolved_model_dir() / "model.onnx").read_bytes()
    info = scorer.info
    assert info.model_id == BUNDLED_MODEL_ID
    assert info.model_version == blake3.blake3(weights).hexdigest()[:16]
    assert (info.dimension, info.backend) == (0, "onnx")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEJA_VERIFIER_BACKEND": "torch"}, "expected one of onnx, triton, mlx"),
        ({"DEJA_VERIFIER_MODEL_DIR": "/nonexistent"}, "lacks model.onnx"),
        ({"DEJA_VERIFIER_MAX_LENGTH": "1024"}, "<= 512"),
        ({"DEJA_VERIFIER_PORT": "x"}, "DEJA_VERIFIER_PORT"),
    ],
)
def test_bad_settings_stop_the_service_at_start_up(env, message):
    with pytest.raises(ConfigError, match=message):
        load(VerifierSettings, env)


# -- through gRPC -----------------------------------------------------------------------


@pytest.mark.integration
async def test_grpc_round_trip_through_the_typed_client(scorer):
    settings = VerifierSettings(port=free_port(), max_candidates=3, max_text_chars=200)
    server = asyncio.create_task(serve(settings, scorer, grace_s=0.5))
    client = VerifierClient(f"127.0.0.1:{settings.port}", timeout_s=5.0)
    await serving(client, SERVICE_NAME)

    candidates = [
        verifier_pb2.VerifyCandidate(entry_id="e-para", prompt=PARAPHRASE, similarity=0.8),
        verifier_pb2.VerifyCandidate(entry_id="e-unrelated", prompt=UNRELATED, similarity=0.1),
    ]
    probs = await client.verify(QUERY, candidates)
    np.testing.assert_allclose(probs, scorer.score(QUERY, [PARAPHRASE, UNRELATED]), atol=1e-6)
    assert await client.verify(QUERY, []) == []

    # entry ids come back in the candidates' order, with the model that answered
    reply = await verifier_pb2_grpc.VerifierServiceStub(client.channel).Verify(
        verifier_pb2.VerifyRequest(query=QUERY, candidates=candidates[::-1]), timeout=5.0
    )
    assert [v.entry_id for v in reply.verdicts] == ["e-unrelated", "e-para"]
    assert reply.model == scorer.info
    assert await client.info() == scorer.info

    refused = {
        "empty query": ("  ", candidates),
        "too many candidates": (QUERY, candidates * 2),
        "query too long": ("x" * 201, candidates),
        "candidate too long": (QUERY, [verifier_pb2.VerifyCandidate(entry_id="e", prompt="x" * 201)]),
        "empty candidate": (QUERY, [verifier_pb2.VerifyCandidate(entry_id="e", prompt="")]),
    }
    for why, (query, cands) in refused.items():
        with pytest.raises(BadRequest):
            await client.verify(query, cands)
            pytest.fail(why)
    assert not client.breaker.is_open  # refusals are the caller's bug, not the service's failure

    await stop_in_process(server)
    with pytest.raises(DependencyUnavailable):
        await client.verify(QUERY, candidates)
    await client.close()
