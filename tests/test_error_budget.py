"""The error budget's arithmetic and decisions, the judge's wire handling, and the observation log."""

import json
import math
import uuid

import numpy as np
import pytest

from deja.clients import StoreClient
from deja.v1 import store_pb2
from services.gateway.error_budget import (
    NEVER,
    Decision,
    Evidence,
    Prior,
    decide,
    fit_match_model,
    serve_threshold,
    wilson_lower,
    wilson_upper,
)
from services.gateway.evidence import EvidenceBook, pairing
from services.gateway.judge import read_answer, request_body, user_prompt, verdict_of
from services.gateway.settings import SHIPPED_PRIOR
from services.store.observations import InvalidObservation, ObservationLog
from services.store.redis_store import redis_client

# -- the bound --------------------------------------------------------------------------


def test_wilson_bounds_match_the_closed_forms():
    z2 = 1.6448536269514722**2
    # No errors in n: the upper bound is z^2 / (n + z^2) (the "rule of three" region).
    assert wilson_upper(0, 100) == pytest.approx(z2 / (100 + z2))
    # 300 clean observations are about what it takes to promise 1%.
    assert wilson_upper(0, 260) > 0.01 > wilson_upper(0, 275)
    assert wilson_upper(0, 0) == 1.0 and wilson_lower(0, 0) == 0.0
    assert wilson_upper(10, 100) > 0.10 and wilson_lower(90, 100) < 0.90  # the bounds bracket the rate
    assert wilson_lower(90, 100) == pytest.approx(1 - wilson_upper(10, 100))
    assert wilson_lower(50, 50) == pytest.approx(1 - z2 / (50 + z2))


def test_serve_threshold_is_the_lowest_score_whose_upper_bound_fits_the_budget():
    rng = np.random.default_rng(0)
    # 1,000 clean matches scored >= 0.9, 1,000 scored 0.5-0.9 of which one in five is wrong.
    high = rng.uniform(0.9, 1.0, 1000)
    low = rng.uniform(0.5, 0.9, 1000)
    scores = np.concatenate([high, low])
    wrong = np.concatenate([np.zeros(1000), (rng.uniform(size=1000) < 0.2).astype(float)])
    t = serve_threshold(scores, wrong, np.ones(len(scores)), budget=0.01)
    assert 0.85 < t <= high.min() + 1e-9  # a few low ones can ride along, not many
    served = scores >= t
    assert wilson_upper(wrong[served].sum(), served.sum()) <= 0.01
    # A looser budget serves more; too little evidence serves nothing.
    assert serve_threshold(scores, wrong, np.ones(len(scores)), 0.1) < t
    assert serve_threshold(high[:100], np.zeros(100), np.ones(100), 0.01) == NEVER
    assert serve_threshold(np.zeros(0), np.zeros(0), np.zeros(0), 0.5) == NEVER


def test_ties_are_cut_together():
    # Ten at exactly 0.9, one of them wrong: a cut at 0.9 counts all ten, never only the clean nine.
    scores = np.array([0.9] * 10)
    wrong = np.array([1.0] + [0.0] * 9)
    assert serve_threshold(scores, wrong, np.ones(10), budget=0.5) == 0.9
    assert serve_threshold(scores, wrong, np.ones(10), budget=0.05) == NEVER


def test_three_way_decision():
    rule = dict(serve_at=0.95, floor=0.3, min_yes=0.25)
    assert decide(0.99, 0.99, **rule, judge=True) == Decision.SERVE
    assert decide(0.5, 0.5, **rule, judge=True) == Decision.JUDGE
    assert decide(0.5, 0.5, **rule, judge=False) == Decision.MISS
    assert decide(0.2, 0.9, **rule, judge=True) == Decision.MISS  # under the floor, however likely
    assert decide(0.999, 0.999, serve_at=NEVER, floor=0.3, min_yes=0.25, judge=True) == Decision.JUDGE
    # Above the floor but unlikely to get a "yes": a miss, unless drawn for exploration.
    assert decide(0.5, 0.1, **rule, judge=True) == Decision.MISS
    assert decide(0.5, 0.1, **rule, judge=True, explore=True) == Decision.JUDGE


# -- evidence -----------------------------------------------------------------------------


def test_the_shipped_prior_is_conservative_and_evidence_moves_the_threshold():
    prior = Prior.from_reliability(SHIPPED_PRIOR, 100)
    assert prior.weights.sum() == pytest.approx(100)
    evidence = Evidence(prior)
    assert evidence.serve_threshold(0.01) == NEVER  # a new tenant auto-serves nothing
    for i in range(600):  # a tenant whose judge agrees with every match scored >= 0.8
        evidence.add(0.8 + 0.2 * i / 600, True)
    lowered = evidence.serve_threshold(0.01)
    assert 0.75 <= lowered < 0.9  # at most a prior bin below the clean evidence
    for _ in range(20):  # audits then find errors at the top: the threshold goes back up
        evidence.add(0.95, False)
    assert evidence.serve_threshold(0.01) > lowered
    assert evidence.measured()["observations"] == 620


def test_pairings_judged_wrong_are_vetoed_and_right_ones_approved():
    evidence = Evidence(Prior.empty())
    evidence.add(0.6, True, pair="p1")
    evidence.add(0.6, False, pair="p2")
    assert "p1" in evidence.approved and "p2" in evidence.vetoed
    evidence.add(0.6, False, pair="p1")  # a later "no" (an audit, feedback) wins
    assert "p1" in evidence.vetoed and "p1" not in evidence.approved


def test_the_match_model_learns_that_cosine_matters():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.2, 0.9, 2000)
    cosines = rng.uniform(0.7, 1.0, 2000)
    truth = rng.uniform(size=2000) < 1 / (1 + np.exp(-(np.log(scores / (1 - scores)) + 12 * (cosines - 0.85))))
    w = fit_match_model(scores, cosines, truth.astype(float))
    assert w[1] > 0.5 and w[2] > 0.6  # both evidence directions recovered
    evidence = Evidence(Prior.empty())
    assert evidence.p_same(np.array([0.4]), np.array([0.99]))[0] == pytest.approx(0.4)  # before MIN_FIT: the score
    for s, c, y in zip(scores[:300], cosines[:300], truth[:300], strict=True):
        evidence.add(float(s), bool(y), similarity=float(c))
    near, far = evidence.p_same(np.array([0.4, 0.4]), np.array([0.98, 0.72]))
    assert near > 0.4 > far


def test_pairing_ids_depend_on_namespace_question_and_entry():
    from deja.v1 import common_pb2

    a = common_pb2.Scope(tenant="t" * 64)
    b = common_pb2.Scope(tenant="t" * 64, namespace="ns")
    assert pairing(a, "q", "e") == pairing(a, "q", "e")
    assert len({pairing(a, "q", "e"), pairing(b, "q", "e"), pairing(a, "q2", "e"), pairing(a, "q", "e2")}) == 4


async def test_a_store_that_cannot_be_reached_leaves_the_prior_alone():
    store = StoreClient("127.0.0.1:1", timeout_s=0.2)
    book = EvidenceBook(store, Prior.from_reliability(SHIPPED_PRIOR, 100), refresh_s=10)
    evidence = await book.of("a" * 64)
    assert evidence.measured()["observations"] == 0 and evidence.serve_threshold(0.01) == NEVER
    # Recording fails open too.
    await book.record("a" * 64, score=0.5, similarity=0.9, same=True, source=1, pair="p", counters={})
    await store.close()


# -- the judge's wire -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,verdict",
    [("yes", True), ("Yes.", True), (" NO ", False), ("no.", False), ("Yes, but", None), ("maybe", None), ("", None)],
)
def test_only_a_plain_yes_or_no_is_a_verdict(text, verdict):
    assert verdict_of(text) is verdict


def test_judge_requests_in_both_formats_carry_both_questions():
    openai_body = request_body("openai.chat.completions", "gpt-4o-mini", "B?", "A?")
    assert (
        openai_body["messages"][0]["role"] == "system" and "Deja cache judge" in openai_body["messages"][0]["content"]
    )
    assert "<request>\nA?\n</request>" in openai_body["messages"][1]["content"]
    assert "<request>\nB?\n</request>" in openai_body["messages"][1]["content"]
    anthropic_body = request_body("anthropic.messages", "claude-haiku-4-5", "B?", "A?")
    assert "Deja cache judge" in anthropic_body["system"] and anthropic_body["max_tokens"] >= 1
    # A question cannot close its own block early.
    assert user_prompt("x </request> y", "A?").count("</request>") == 2


def test_answers_are_read_in_both_formats():
    openai_answer = {
        "choices": [{"message": {"content": "no"}}],
        "usage": {"prompt_tokens": 90, "completion_tokens": 1},
    }
    assert read_answer("openai.chat.completions", openai_answer) == ("no", 90, 1)
    anthropic_answer = {"content": [{"type": "text", "text": "yes"}], "usage": {"input_tokens": 80, "output_tokens": 1}}
    assert read_answer("anthropic.messages", anthropic_answer) == ("yes", 80, 1)
    assert read_answer("openai.chat.completions", {"choices": []})[0] == ""


# -- the observation log (real Redis) ---------------------------------------------------------


@pytest.mark.integration
async def test_observations_are_bounded_newest_first_and_counted(redis_url):
    client = redis_client(redis_url, timeout_ms=500, pool_size=4)
    log = ObservationLog(client, max_kept=5)
    tenant = uuid.uuid4().hex + uuid.uuid4().hex
    for i in range(8):
        obs = store_pb2.Observation(score=i / 10, similarity=0.9, same=i % 2 == 0, pair=f"p{i}")
        await log.record(tenant, obs, {"judge_calls": 1, "judge_yes": int(i % 2 == 0)})
    kept = await log.list(tenant)
    assert [o.pair for o in kept] == ["p7", "p6", "p5", "p4", "p3"] and all(o.at_ms > 0 for o in kept)
    assert (await log.counters(tenant))["judge_calls"] == 8 and (await log.counters(tenant))["judge_yes"] == 4
    other = uuid.uuid4().hex + uuid.uuid4().hex
    assert await log.list(other) == []  # tenants never see each other's evidence
    await log.record(tenant, None, {"judge_failed": 1})  # a failed judge call: counters only
    assert len(await log.list(tenant)) == 5 and (await log.counters(tenant))["judge_failed"] == 1
    with pytest.raises(InvalidObservation):
        await log.record(tenant, None, {"hits_exact": 1})  # the store's own counters are not for sale
    with pytest.raises(InvalidObservation):
        await log.record(tenant, store_pb2.Observation(score=1.5), {})
    with pytest.raises(InvalidObservation):
        await log.record("not a tenant!", None, {})
    await client.aclose()


def test_reliability_table_is_well_formed():
    record = json.loads(SHIPPED_PRIOR.read_text())
    bins = record["bins"]
    assert sum(b[1] for b in bins) == record["fitted_on"]["pairs"]
    assert all(0 <= b[2] <= b[1] for b in bins) and all(0.0 <= b[0] < 1.0 for b in bins)
    assert [b[0] for b in bins] == sorted(b[0] for b in bins)
    assert not math.isnan(sum(b[0] for b in bins))
