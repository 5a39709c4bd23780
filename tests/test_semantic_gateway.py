"""The semantic tier end to end: real embedder, semantic index and verifier services behind the
gateway, driven by the real openai SDK."""

import time

import httpx
import pytest

from tests.conftest import make_cluster, sdk, upstream_calls

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
TOOLS = [{"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture(scope="module")
def semantic_cluster(tmp_path_factory):
    running = make_cluster(
        tmp_path_factory.mktemp("semantic"), semantic=True, extra_env={"DEJA_TIME_SENSITIVE_TTL_S": "2"}
    )
    with running:
        yield running


def ask(client, question: str, **params):
    return client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], **params
    )


def learn(client, question: str, **params):
    """A miss, then wait until the answer is stored and indexed (that happens after the response)."""
    first = ask(client, question, **params)
    assert first.headers["x-deja-cache"] == "miss"
    deadline = time.monotonic() + 5
    while ask(client, question, **params).headers["x-deja-cache"] != "hit-exact":
        assert time.monotonic() < deadline, "the answer was never cached"
        time.sleep(0.05)
    time.sleep(0.3)  # the index write follows the store write
    return first.parse()


def test_a_reworded_question_is_a_verified_semantic_hit(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-1")
    answer = learn(client, "How do I center a div horizontally with CSS?")
    calls = upstream_calls(semantic_cluster)
    raw = ask(client, "How can I horizontally center a div using CSS?")
    assert raw.headers["x-deja-cache"] == "hit-semantic"
    assert 0.75 <= float(raw.headers["x-deja-similarity"]) <= 1.0
    assert 0.5 <= float(raw.headers["x-deja-verifier-score"]) <= 1.0
    assert raw.parse().choices[0].message.content == answer.choices[0].message.content
    assert upstream_calls(semantic_cluster) == calls
    streamed = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "How can I horizontally center a div using CSS?"}],
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == answer.choices[0].message.content


def test_an_unrelated_question_is_a_miss(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-2")
    learn(client, "How do I reverse a linked list in Java?")
    assert ask(client, "What is the capital city of Australia?").headers["x-deja-cache"] == "miss"


def test_semantic_hits_respect_tenant_and_context(semantic_cluster):
    alice, bob = sdk(semantic_cluster, "sk-semantic-alice"), sdk(semantic_cluster, "sk-semantic-bob")
    learn(alice, "How do I read a CSV file with pandas?")
    assert ask(bob, "How can I read a CSV file using pandas?").headers["x-deja-cache"] == "miss"
    other_context = alice.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Answer only in French."},
            {"role": "user", "content": "How can I read a CSV file using pandas?"},
        ],
    )
    assert other_context.headers["x-deja-cache"] == "miss"
    assert ask(alice, "How can I read a CSV file using pandas?", temperature=0.0).headers["x-deja-cache"] == "miss"
    assert ask(alice, "How can I read a CSV file using pandas?").headers["x-deja-cache"] == "hit-semantic"


def test_answers_that_call_tools_are_never_served_semantically(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-tools")
    learn(client, "Find the documentation for flexbox alignment", tools=TOOLS)
    raw = ask(client, "Look up the docs on flexbox alignment", tools=TOOLS)
    assert raw.headers["x-deja-cache"] == "miss"


def test_excluded_topics_are_never_semantic(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-weather")
    learn(client, "What is the weather like in Paris this weekend?")
    assert ask(client, "How is the weather in Paris this weekend?").headers["x-deja-cache"] == "miss"


def test_time_sensitive_answers_expire_quickly(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-latest")
    learn(client, "What is the latest stable release of Django?")
    time.sleep(2.2)  # DEJA_TIME_SENSITIVE_TTL_S=2 in this cluster: entry and index point have expired
    assert ask(client, "Which Django release is the latest stable one?").headers["x-deja-cache"] == "miss"
    assert ask(client, "What is the latest stable release of Django?").headers["x-deja-cache"] != "hit-exact"


def test_readiness_lists_every_tier(semantic_cluster):
    body = httpx.get(f"{semantic_cluster.gateway_url}/readyz").json()
    assert body == {
        "status": "ok",
        "tiers": {"exact": "up", "embedder": "up", "semantic": "up", "verifier": "up"},
    }


@pytest.mark.parametrize("dead", ["embedder", "semantic-index", "verifier"])
def test_each_semantic_tier_failing_open(own_cluster, dead):
    running = own_cluster(semantic=True)
    client = sdk(running, "sk-fail-open")
    learn(client, "How do I center a div horizontally with CSS?")
    running.kill(dead)
    for paraphrase in (
        "How can I horizontally center a div using CSS?",
        "CSS: how to center a div horizontally?",
        "What is the CSS to center a div horizontally?",
    ):
        raw = ask(client, paraphrase)
        assert raw.status_code == 200 and raw.headers["x-deja-cache"] == "miss"
        assert raw.parse().choices[0].message.content
    assert ask(client, "How do I center a div horizontally with CSS?").headers["x-deja-cache"] == "hit-exact"
    tiers = httpx.get(f"{running.gateway_url}/readyz").json()["tiers"]
    assert tiers[{"semantic-index": "semantic"}.get(dead, dead)] == "down"
