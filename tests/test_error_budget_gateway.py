"""The error budget end to end: real embedder, semantic index and verifier behind the gateway, the
mock provider as the judge, driven by the real openai and anthropic SDKs.

A fresh tenant's evidence (the shipped prior) never auto-serves a paraphrase: it goes to the judge,
which is the provider itself, called with the client's key. These tests steer the mock's verdicts
through `/mock/judge` (a question's cluster in its truth: same cluster = "yes") and read what the
gateway did from its headers, `/v1/cache/stats` and the mock's `/mock/stats`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import pytest

from tests.helpers import ask, make_cluster, sdk, semantic_points, settled

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
ADMIN_KEY = "admin-key-for-the-error-budget-tests"
POLL_S = 10.0  # a loaded box can take seconds for a background write

# The judge on, a deadline that a sane judge meets, evidence reloaded from the store on every lookup
# (so a verdict written in the background is seen by the next request), a roomy semantic deadline, and
# no random audits or exploration (they are judge calls a test cannot predict; the audit has its own test).
JUDGE_ENV = {
    "DEJA_JUDGE": "on",
    "DEJA_AUDIT_RATE": "0",
    "DEJA_JUDGE_TIMEOUT_MS": "1500",
    "DEJA_EVIDENCE_REFRESH_S": "0",
    "DEJA_SEMANTIC_TIMEOUT_MS": "3000",
    "DEJA_ADMIN_KEY": ADMIN_KEY,
}


@pytest.fixture(scope="module")
def judged_cluster(tmp_path_factory):
    with make_cluster(tmp_path_factory.mktemp("error-budget"), semantic=True, extra_env=JUDGE_ENV) as running:
        yield running


# -- helpers --------------------------------------------------------------------------------------


def poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout_s: float = POLL_S) -> Any:
    """Read until `done(value)`; fail with the last value after `timeout_s`."""
    value = settled(read, done, timeout_s, interval_s=0.1)
    assert done(value), f"{what}: still {value!r} after {timeout_s:.0f}s"
    return value


def configure_judge(running, **body) -> dict:
    """Reset the mock's judge (truth, fault, latency), then apply `body`."""
    response = httpx.post(f"{running.mock_url}/mock/judge", json={"reset": True, **body})
    assert response.status_code == 200, response.text
    return response.json()


def mock_stats(running) -> dict[str, int]:
    counts = httpx.get(f"{running.mock_url}/mock/stats").json()
    return {name: counts.get(name, 0) for name in ("chat_completions", "messages", "judge", "judge_yes", "judge_no")}


def cache_stats(running, api_key: str) -> dict:
    response = httpx.get(f"{running.gateway_url}/v1/cache/stats", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    return response.json()


def ask_claude(client, question: str, **params):
    return client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=128, messages=[{"role": "user", "content": question}], **params
    )


def learn(running, api_key: str, send: Callable[[str], Any], question: str):
    """A miss, then wait until its answer is stored (an exact hit) and indexed (a semantic point):
    both happen after the response. Returns the parsed first answer."""
    before = semantic_points(running, api_key)
    first = send(question)
    assert first.headers["x-deja-cache"] == "miss"
    # Indexed comes after stored, so once the point is there the exact entry is too. (Asking the same
    # question while the write is in flight could find the point first and send it to the judge.)
    poll(lambda: semantic_points(running, api_key), lambda n: n > before, "the answer was never indexed")
    assert send(question).headers["x-deja-cache"] == "hit-exact"
    return first.parse()


def taught(running, key: str, truth: dict[str, str], **judge) -> tuple[Any, Any]:
    """The mock's judge told `truth` (question -> cluster; `judge`: its other settings), and the
    tenant's answer to the first question learned: (the tenant's openai client, that answer)."""
    configure_judge(running, truth=truth, **judge)
    client = sdk(running, key)
    return client, learn(running, key, lambda q: ask(client, q), next(iter(truth)))


def judge_budget(running, api_key: str, done: Callable[[dict], bool], what: str) -> dict:
    """The tenant's stats, once `done(stats)` (observations and counters are written in the background)."""
    return poll(lambda: cache_stats(running, api_key), done, what)


def content(raw) -> str:
    return raw.parse().choices[0].message.content


# -- the judge's verdicts -------------------------------------------------------------------------


def test_a_judged_yes_serves_the_cached_answer_and_approves_the_pairing(judged_cluster):
    key = "sk-budget-judge-yes"
    question, paraphrase = "How do I merge two dictionaries in Python?", "How can I merge two dicts in Python?"
    client, answer = taught(judged_cluster, key, {question: "merge-dicts", paraphrase: "merge-dicts"})

    before = mock_stats(judged_cluster)
    raw = ask(client, paraphrase)
    assert raw.status_code == 200
    assert raw.headers["x-deja-cache"] == "hit-judged"
    assert raw.headers["x-deja-judge"] == "yes"
    assert 0.1 <= float(raw.headers["x-deja-verifier-score"]) <= 1.0
    assert content(raw) == answer.choices[0].message.content
    after = mock_stats(judged_cluster)
    # The provider was asked only to judge, never to answer.
    assert after["chat_completions"] == before["chat_completions"]
    assert after["judge"] == before["judge"] + 1 and after["judge_yes"] == before["judge_yes"] + 1

    # Once the verdict is in the store, the pairing is approved: served again without a judge call.
    judge_budget(judged_cluster, key, lambda s: s["error_budget"]["observations"] == 1, "the verdict")
    again = ask(client, paraphrase)
    assert again.headers["x-deja-cache"] == "hit-semantic"
    assert "x-deja-judge" not in again.headers
    assert again.headers["x-deja-entry"] == raw.headers["x-deja-entry"]
    assert content(again) == answer.choices[0].message.content
    assert mock_stats(judged_cluster) == after


def test_a_judged_no_is_a_miss_answered_by_the_provider_and_then_cached(judged_cluster):
    key = "sk-budget-judge-no"
    question = "How do I reverse a linked list in Java?"
    paraphrase = "How can I reverse a singly linked list in Java?"
    client, answer = taught(judged_cluster, key, {question: "reverse-list", paraphrase: "reverse-list-in-place"})

    before = mock_stats(judged_cluster)
    raw = ask(client, paraphrase)
    assert raw.status_code == 200
    assert raw.headers["x-deja-cache"] == "miss"
    assert raw.headers["x-deja-judge"] == "no"
    assert content(raw) and content(raw) != answer.choices[0].message.content
    after = mock_stats(judged_cluster)
    assert after["chat_completions"] == before["chat_completions"] + 1
    assert after["judge"] == before["judge"] + 1 and after["judge_no"] == before["judge_no"] + 1

    # Its own answer was cached: the same paraphrase is now an exact hit.
    hit = poll(lambda: ask(client, paraphrase), lambda r: r.headers["x-deja-cache"] == "hit-exact", "exact hit")
    assert hit.headers["x-deja-entry"] == raw.headers["x-deja-entry"]
    assert content(hit) == content(raw)
    stats = judge_budget(judged_cluster, key, lambda s: s["judge"]["no"] >= 1, "the judge's no")
    assert stats["hits"]["judged"] == 0 and stats["error_budget"]["error_rate"] == 1.0


@pytest.mark.parametrize(("fault", "outcome"), [("timeout", "timeout"), ("500", "error"), ("garbage", "unclear")])
def test_a_failing_judge_is_a_plain_miss_never_a_client_error(judged_cluster, fault, outcome):
    key = f"sk-budget-judge-fault-{fault}"
    question = "How do I convert a string to an integer in JavaScript?"
    paraphrase = "How can I turn a string into an integer in JavaScript?"
    truth = {question: "parse-int", paraphrase: "parse-int"}  # a working judge would say yes
    client, _ = taught(judged_cluster, key, truth)

    configure_judge(judged_cluster, truth=truth, fault=fault)
    try:
        before = mock_stats(judged_cluster)
        started = time.monotonic()
        raw = ask(client, paraphrase)
        elapsed = time.monotonic() - started
    finally:
        configure_judge(judged_cluster)
    assert raw.status_code == 200
    assert raw.headers["x-deja-cache"] == "miss"
    assert raw.headers["x-deja-judge"] == outcome
    assert content(raw)
    after = mock_stats(judged_cluster)
    assert after["judge"] == before["judge"] + 1
    assert after["chat_completions"] == before["chat_completions"] + 1
    if fault == "timeout":
        assert 1.4 <= elapsed < 8.0  # DEJA_JUDGE_TIMEOUT_MS=1500, then the provider's answer
    # A failure is counted, but it is no verdict: no observation, nothing vetoed or approved.
    stats = judge_budget(judged_cluster, key, lambda s: s["judge"]["failed"] == 1, "the failed judge call")
    assert stats["judge"]["calls"] == 1 and stats["judge"]["yes"] == stats["judge"]["no"] == 0
    assert stats["error_budget"]["observations"] == 0
    assert stats["hits"]["judged"] == 0


def test_anthropic_requests_are_judged_through_the_messages_api(judged_cluster):
    key = "sk-ant-budget-judge"
    question = "How do I create a virtual environment in Python?"
    paraphrase = "How can I make a Python virtual environment?"
    configure_judge(judged_cluster, truth={question: "venv", paraphrase: "venv"})
    claude = anthropic.Anthropic(base_url=judged_cluster.gateway_url, api_key=key, max_retries=0, timeout=10)
    first = learn(judged_cluster, key, lambda q: ask_claude(claude, q), question)

    before = mock_stats(judged_cluster)
    hit = ask_claude(claude, paraphrase)
    assert hit.headers["x-deja-cache"] == "hit-judged"
    assert hit.headers["x-deja-judge"] == "yes"
    assert hit.parse().model_dump() == first.model_dump()
    after = mock_stats(judged_cluster)
    # The judge call went out in Anthropic's format with the client's x-api-key: the mock's chat
    # completions endpoint would have refused it (it requires Authorization), so a "yes" came from
    # /v1/messages; and the hit itself never asked the provider for an answer.
    assert after["judge"] == before["judge"] + 1 and after["judge_yes"] == before["judge_yes"] + 1
    assert after["messages"] == before["messages"]
    assert after["chat_completions"] == before["chat_completions"]
    stats = judge_budget(judged_cluster, key, lambda s: s["judge"]["calls"] == 1, "the judge call")
    assert stats["judge"]["yes"] == 1 and stats["hits"]["judged"] == 1
    assert stats["judge"]["input_tokens"] > 0 and stats["judge"]["output_tokens"] >= 1


def test_a_request_can_turn_the_judge_off(judged_cluster):
    key = "sk-budget-judge-off"
    question = "How do I remove duplicates from a list in Python?"
    paraphrase = "How can I remove duplicate items from a Python list?"
    other = "How do I remove duplicate elements from a list in Python?"
    client, _ = taught(judged_cluster, key, {question: "dedupe", paraphrase: "dedupe", other: "dedupe"})

    before = mock_stats(judged_cluster)
    raw = ask(client, paraphrase, extra_headers={"X-Deja-Judge": "off"})
    assert raw.status_code == 200 and raw.headers["x-deja-cache"] == "miss"
    assert "x-deja-judge" not in raw.headers
    after = mock_stats(judged_cluster)
    assert after["judge"] == before["judge"]
    assert after["chat_completions"] == before["chat_completions"] + 1
    # With the judge on, the same kind of paraphrase is judged (and the judge says yes).
    judged = ask(client, other)
    assert judged.headers["x-deja-cache"] == "hit-judged" and judged.headers["x-deja-judge"] == "yes"
    assert mock_stats(judged_cluster)["judge"] == after["judge"] + 1
    bad = httpx.post(f"{judged_cluster.gateway_url}/v1/chat/completions",
                     json={"model": MODEL, "messages": [{"role": "user", "content": other}]},
                     headers={"Authorization": f"Bearer {key}", "X-Deja-Judge": "maybe"})  # fmt: skip
    assert bad.status_code == 400


def test_evidence_is_kept_per_tenant(judged_cluster):
    key_a, key_b = "sk-budget-tenant-a", "sk-budget-tenant-b"
    question, paraphrase = "How do I read a JSON file in Python?", "How can I load a JSON file in Python?"
    configure_judge(judged_cluster, truth={question: "read-json", paraphrase: "read-json"})
    alice, bob = sdk(judged_cluster, key_a), sdk(judged_cluster, key_b)
    learn(judged_cluster, key_a, lambda q: ask(alice, q), question)
    assert ask(alice, paraphrase).headers["x-deja-cache"] == "hit-judged"
    stats_a = judge_budget(judged_cluster, key_a, lambda s: s["error_budget"]["observations"] == 1, "A's verdict")
    assert stats_a["judge"]["calls"] == 1 and stats_a["judge"]["yes"] == 1

    stats_b = cache_stats(judged_cluster, key_b)
    assert stats_b["tenant"] != stats_a["tenant"]
    assert stats_b["error_budget"]["observations"] == 0 and stats_b["error_budget"]["error_rate"] is None
    assert stats_b["judge"] == {"calls": 0, "yes": 0, "no": 0, "failed": 0, "input_tokens": 0, "output_tokens": 0}
    assert stats_b["hits"]["judged"] == 0
    # B has nothing to match against: a plain miss, nobody asked.
    before = mock_stats(judged_cluster)
    raw = ask(bob, paraphrase)
    assert raw.headers["x-deja-cache"] == "miss" and "x-deja-judge" not in raw.headers
    assert mock_stats(judged_cluster)["judge"] == before["judge"]
    assert cache_stats(judged_cluster, key_b)["error_budget"]["observations"] == 0


def test_stats_show_the_judge_and_the_error_budget(judged_cluster):
    key = "sk-budget-stats"
    question = "How do I check if a file exists in Python?"
    paraphrase = "How can I test whether a file exists in Python?"
    client, _ = taught(judged_cluster, key, {question: "file-exists", paraphrase: "file-exists"})
    assert ask(client, paraphrase).headers["x-deja-cache"] == "hit-judged"

    body = judge_budget(
        judged_cluster, key, lambda s: s["error_budget"]["observations"] == 1 and s["judge"]["calls"] == 1, "stats"
    )
    hits = body["hits"]
    assert hits["judged"] == 1 and hits["semantic"] >= hits["judged"]
    assert hits["total"] >= hits["exact"] + hits["semantic"]
    assert body["judged_share"] == round(hits["judged"] / hits["semantic"], 4)
    judge = body["judge"]
    assert judge["calls"] == 1 and judge["yes"] == 1 and judge["no"] == 0 and judge["failed"] == 0
    assert judge["input_tokens"] > 0 and judge["output_tokens"] >= 1
    spent = judge["input_tokens"] + judge["output_tokens"]
    assert body["tokens_saved_net_of_judge"] == body["tokens_saved"] - spent
    assert body["tokens_saved"] > 0
    assert body["audits"] == {"judged": 0, "wrong": 0, "error_rate": None, "error_rate_upper95": None}
    budget = body["error_budget"]
    assert budget["max_error"] == 0.01
    assert budget["judge_floor"] == 0.1
    assert budget["judge"] is True
    assert budget["audit_rate"] == 0.0  # as JUDGE_ENV configures it
    assert budget["serve_threshold"] is None  # a fresh tenant: no score is backed by enough evidence yet
    assert budget["observations"] == 1 and budget["error_rate"] == 0.0
    assert 0.0 < budget["error_rate_upper95"] < 1.0


def test_a_request_cannot_loosen_the_error_budget(judged_cluster):
    key = "sk-budget-loose"
    question = "How do I find the length of a string in Go?"
    paraphrase = "How can I get the length of a string in Go?"
    client, _ = taught(judged_cluster, key, {question: "go-len", paraphrase: "go-len"})
    # A budget of 1.0 would serve anything over the floor unasked; the configured 0.01 still applies.
    raw = ask(client, paraphrase, extra_headers={"X-Deja-Max-Error": "1.0"})
    assert raw.headers["x-deja-cache"] == "hit-judged" and raw.headers["x-deja-judge"] == "yes"


# -- clusters of their own --------------------------------------------------------------------------


def test_observations_and_judge_counters_survive_restarts(own_cluster):
    running = own_cluster(semantic=True, persist=True, extra_env=JUDGE_ENV)
    key = "sk-budget-persist"
    question, paraphrase = "How do I rename a branch in git?", "How can I rename a git branch?"
    client, _ = taught(running, key, {question: "rename-branch", paraphrase: "rename-branch"})
    assert ask(client, paraphrase).headers["x-deja-cache"] == "hit-judged"

    def recorded(stats: dict) -> bool:
        return stats["error_budget"]["observations"] == 1 and stats["judge"]["calls"] == 1

    def stats_when_up() -> dict | None:
        try:
            response = httpx.get(f"{running.gateway_url}/v1/cache/stats", headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    expected = judge_budget(running, key, recorded, "the verdict")
    assert expected["judge"]["yes"] == 1 and expected["hits"]["judged"] == 1

    def same_evidence(stats: dict | None) -> bool:
        return stats is not None and stats["judge"] == expected["judge"] and stats["error_budget"] == expected[
            "error_budget"] and stats["hits"]["judged"] == 1  # fmt: skip

    running.restart("store")
    poll(stats_when_up, same_evidence, "after a store restart", timeout_s=20)
    # Redis keeps them on disk (append-only file); the gateway restarted too reloads them from the store.
    running.restart("redis")
    running.restart("store")
    running.restart("gateway")
    poll(stats_when_up, same_evidence, "after a redis, store and gateway restart", timeout_s=20)
    # The approved pairing came back with them: served without a new judge call.
    judged = mock_stats(running)["judge"]
    again = ask(client, paraphrase)
    assert again.headers["x-deja-cache"] == "hit-semantic"
    assert mock_stats(running)["judge"] == judged


def test_an_audit_that_finds_a_wrong_hit_vetoes_the_pairing(own_cluster, tmp_path):
    prior = tmp_path / "trusting-prior.json"
    prior.write_text(json.dumps({"bins": [[0.0, 1000, 1000], [0.5, 1_000_000, 0]]}))
    running = own_cluster(
        semantic=True,
        extra_env={**JUDGE_ENV, "DEJA_AUDIT_RATE": "1.0", "DEJA_ERROR_PRIOR": str(prior),
                   "DEJA_ERROR_PRIOR_WEIGHT": "1001000"},
    )  # fmt: skip
    key = "sk-budget-audit"
    question = "How do I center a div horizontally with CSS?"
    paraphrase = "How can I horizontally center a div using CSS?"
    client, answer = taught(running, key, {question: "center-div", paraphrase: "center-div-other"})

    before = mock_stats(running)
    served = ask(client, paraphrase)
    assert served.headers["x-deja-cache"] == "hit-semantic"  # the trusting prior serves it unasked
    assert "x-deja-judge" not in served.headers
    assert content(served) == answer.choices[0].message.content
    assert mock_stats(running)["chat_completions"] == before["chat_completions"]

    # After the response, the audit asks the judge anyway, and it says no.
    stats = judge_budget(running, key, lambda s: s["audits"]["wrong"] == 1, "the audit's verdict")
    assert stats["audits"]["judged"] == 1 and stats["audits"]["error_rate"] == 1.0
    assert stats["judge"]["calls"] == 1 and stats["judge"]["failed"] == 0
    assert stats["error_budget"]["observations"] == 1 and stats["error_budget"]["error_rate"] == 1.0
    after = mock_stats(running)
    assert after["judge"] == before["judge"] + 1 and after["judge_no"] == before["judge_no"] + 1

    # The pairing is vetoed: the same question is never served from that entry again.
    again = ask(client, paraphrase)
    assert again.status_code == 200
    assert again.headers["x-deja-cache"] != "hit-semantic"
    assert again.headers["x-deja-entry"] != served.headers["x-deja-entry"]
    assert content(again) != answer.choices[0].message.content

    # Another tenant's request may tighten the budget below what the prior backs: then the judge decides.
    strict_key = "sk-budget-audit-strict"
    configure_judge(running, truth={question: "center-div", paraphrase: "center-div"})
    strict = sdk(running, strict_key)
    learn(running, strict_key, lambda q: ask(strict, q), question)
    tight = ask(strict, paraphrase, extra_headers={"X-Deja-Max-Error": "0.000001"})
    assert tight.headers["x-deja-cache"] == "hit-judged" and tight.headers["x-deja-judge"] == "yes"


def test_race_mode_overlaps_the_judge_and_the_upstream_request(own_cluster):
    # Both a second long, so overlapping (about 1 s) and one after the other (2 s) are far apart.
    running = own_cluster(
        semantic=True, mock_latency_ms=1000,
        extra_env={**JUDGE_ENV, "DEJA_JUDGE_MODE": "race", "DEJA_JUDGE_TIMEOUT_MS": "5000"},
    )  # fmt: skip
    key = "sk-budget-race"
    question = "How do I sort a dictionary by value in Python?"
    approved = "How can I sort a Python dict by its values?"
    refused = "What is the way to sort a dict by value in Python?"
    client, answer = taught(running, key, {question: "sort", approved: "sort", refused: "sort-other"}, latency_ms=1000)

    started = time.monotonic()
    yes = ask(client, approved)
    assert yes.headers["x-deja-cache"] == "hit-judged" and yes.headers["x-deja-judge"] == "yes"
    assert content(yes) == answer.choices[0].message.content
    assert time.monotonic() - started >= 0.9  # it did wait for the judge

    started = time.monotonic()
    no = ask(client, refused)
    elapsed = time.monotonic() - started
    assert no.headers["x-deja-cache"] == "miss" and no.headers["x-deja-judge"] == "no"
    assert content(no) != answer.choices[0].message.content
    assert 0.9 <= elapsed < 1.7, f"judge + upstream took {elapsed:.2f}s: not overlapped (sequential is >= 2 s)"
