"""The semantic tier end to end: real embedder, semantic index and verifier services behind the
gateway, driven by the real openai SDK."""

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import blake3
import httpx
import pytest

from tests.helpers import ask, learn, make_cluster, sdk, semantic_points, stored_entries, until, upstream_calls

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
TOOLS = [{"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object", "properties": {}}}}]
ADMIN_KEY = "admin-key-for-the-semantic-tests"


@pytest.fixture(scope="module")
def semantic_cluster(tmp_path_factory):
    running = make_cluster(
        tmp_path_factory.mktemp("semantic"),
        semantic=True,
        extra_env={"DEJA_TIME_SENSITIVE_TTL_S": "2", "DEJA_ADMIN_KEY": ADMIN_KEY},
    )
    with running:
        yield running


def test_a_reworded_question_is_a_verified_semantic_hit(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-1")
    answer = learn(client, "How do I center a div horizontally with CSS?", semantic_cluster)
    calls = upstream_calls(semantic_cluster)
    raw = ask(client, "How can I horizontally center a div using CSS?")
    assert raw.headers["x-deja-cache"] == "hit-semantic"
    assert 0.70 <= float(raw.headers["x-deja-similarity"]) <= 1.0
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
    learn(client, "How do I reverse a linked list in Java?", semantic_cluster)
    assert ask(client, "What is the capital city of Australia?").headers["x-deja-cache"] == "miss"


def test_semantic_hits_respect_tenant_and_context(semantic_cluster):
    alice, bob = sdk(semantic_cluster, "sk-semantic-alice"), sdk(semantic_cluster, "sk-semantic-bob")
    learn(alice, "How do I read a CSV file with pandas?", semantic_cluster)
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
    learn(client, "Find the documentation for flexbox alignment", semantic_cluster, indexed=False, tools=TOOLS)
    raw = ask(client, "Look up the docs on flexbox alignment", tools=TOOLS)
    assert raw.headers["x-deja-cache"] == "miss"


def test_excluded_topics_are_never_semantic(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-weather")
    learn(client, "What is the weather like in Paris this weekend?", semantic_cluster, indexed=False)
    assert ask(client, "How is the weather in Paris this weekend?").headers["x-deja-cache"] == "miss"


def test_time_sensitive_answers_expire_quickly(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-latest")
    learn(client, "What is the latest stable release of Django?", semantic_cluster)
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
    learn(client, "How do I center a div horizontally with CSS?", running)
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


def test_without_the_verdict_memo_every_lookup_asks_the_verifier(own_cluster):
    running = own_cluster(semantic=True, extra_env={"DEJA_VERDICT_MEMO_SIZE": "0"})
    client = sdk(running, "sk-no-memo")
    learn(client, "How do I center a div horizontally with CSS?", running)
    calls = verify_calls(running)
    for _ in range(2):
        assert ask(client, "How can I horizontally center a div using CSS?").headers["x-deja-cache"] == "hit-semantic"
    assert verify_calls(running) == calls + 2


def test_a_saturated_semantic_tier_sheds_lookups_at_once_and_every_request_is_answered(own_cluster):
    limit = {"DEJA_SEMANTIC_MAX_INFLIGHT": "1", "DEJA_SEMANTIC_TIMEOUT_MS": "3000"}
    running = own_cluster(semantic=True, extra_env=limit)
    client = sdk(running, "sk-shed")
    learn(client, "How do I center a div horizontally with CSS?", running)
    embedder = running.procs["embedder"].popen
    embedder.send_signal(signal.SIGSTOP)  # the one admitted lookup hangs in the embedder: the tier is full
    try:
        questions = [f"How do I center a div with CSS, take {i}?" for i in range(6)]
        with ThreadPoolExecutor(len(questions)) as pool:
            answers = list(pool.map(lambda q: ask(client, q), questions))
    finally:
        embedder.send_signal(signal.SIGCONT)
    assert all(a.status_code == 200 and a.parse().choices[0].message.content for a in answers)
    assert all(a.headers["x-deja-cache"] == "miss" for a in answers)
    shed = metric(f"{running.gateway_url}/metrics", 'deja_semantic_shed_total{reason="limit"}')
    assert shed >= len(questions) - 1  # only one lookup was in flight; the others were misses at once


# -- per-request control of the semantic tier ----------------------------------------------------


def test_semantic_off_is_exact_only_and_a_stricter_threshold_can_refuse_a_hit(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-control")
    learn(client, "How do I sort a Python list in place?", semantic_cluster)
    paraphrase = "How can I sort a list in place in Python?"
    assert ask(client, paraphrase, extra_headers={"X-Deja-Semantic": "off"}).headers["x-deja-cache"] == "miss"
    strict = ask(client, paraphrase + " ", extra_headers={"X-Deja-Threshold": "1.0"})
    assert strict.headers["x-deja-cache"] == "miss"  # no verifier score reaches 1.0
    loose = ask(client, paraphrase + "  ", extra_headers={"X-Deja-Threshold": "0.0"})
    assert loose.headers["x-deja-cache"] == "hit-semantic"  # 0.0 cannot loosen: the configured 0.5 still applies
    assert float(loose.headers["x-deja-verifier-score"]) >= 0.5
    # a question asked with semantic off is not indexed either
    learn(client, "What does the yield keyword do in Python?", semantic_cluster, indexed=False,
          extra_headers={"X-Deja-Semantic": "off"})  # fmt: skip
    assert ask(client, "What is the yield keyword for in Python?").headers["x-deja-cache"] == "miss"


def test_semantic_hits_stay_inside_a_namespace(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-ns")
    git = {"X-Deja-Namespace": "git"}
    learn(client, "How do I undo the last git commit?", semantic_cluster, extra_headers=git)
    paraphrase = "How do I undo my last git commit?"
    assert ask(client, paraphrase).headers["x-deja-cache"] == "miss"
    hit = ask(client, paraphrase, extra_headers=git)
    assert hit.headers["x-deja-cache"] == "hit-semantic"


# -- Anthropic through the semantic tier -----------------------------------------------------------


def test_anthropic_reworded_question_is_a_semantic_hit_in_anthropics_shape(semantic_cluster):
    claude = anthropic.Anthropic(base_url=semantic_cluster.gateway_url, api_key="sk-ant-semantic", max_retries=0)

    def ask_claude(text: str):
        return claude.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=128, messages=[{"role": "user", "content": text}]
        )

    before = semantic_points(semantic_cluster, "sk-ant-semantic")
    first = ask_claude("How do I center a div horizontally with CSS?")
    assert first.headers["x-deja-cache"] == "miss"
    until(lambda: semantic_points(semantic_cluster, "sk-ant-semantic") > before, "the answer indexed", 15)
    hit = ask_claude("How can I horizontally center a div using CSS?")
    assert hit.headers["x-deja-cache"] == "hit-semantic"
    assert hit.parse().model_dump() == first.parse().model_dump()
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=128,
                                messages=[{"role": "user", "content": "How can I horizontally center a div using CSS?"}]
                                ) as stream:  # fmt: skip
        assert stream.get_final_message().model_dump() == first.parse().model_dump()
    # the OpenAI API never gets the Anthropic answer, even semantically
    openai_client = sdk(semantic_cluster, "sk-ant-semantic")
    assert ask(openai_client, "How can I horizontally center a div using CSS?").headers["x-deja-cache"] == "miss"


# -- a tool loop never replays a stale step ------------------------------------------------------

LOOP_TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in ("search_docs", "read_file", "run_tests")
]


def run_tool_loop(client, question: str, results: dict[str, str]) -> list[tuple[str, object]]:
    """Drive the loop the way an agent does: call the model, run the tool it asks for, send the result."""
    messages = [{"role": "user", "content": question}]
    steps = []
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, tools=LOOP_TOOLS)
        message = raw.parse().choices[0].message
        steps.append((raw.headers["x-deja-cache"], message))
        if not message.tool_calls:
            return steps
        [call] = message.tool_calls
        messages.append(message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": results[call.function.name]})
    raise AssertionError("the loop did not finish")


def test_a_three_step_tool_loop_driven_twice_never_replays_a_stale_step(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-tool-loop")
    question = "Find why the flexbox test fails and fix it"
    results = {"search_docs": "flexbox docs: use justify-content", "read_file": "style.css: display: block",
               "run_tests": "1 failed: test_center"}  # fmt: skip
    first = run_tool_loop(client, question, results)
    assert [m.tool_calls[0].function.name if m.tool_calls else "text" for _, m in first] == [
        "search_docs", "read_file", "run_tests", "text"
    ]  # fmt: skip
    assert [outcome for outcome, _ in first] == ["miss"] * 4
    until(lambda: stored_entries(client) == 4, "the four answers stored")  # written after the responses

    calls = upstream_calls(semantic_cluster)
    second = run_tool_loop(client, question, results)
    assert [outcome for outcome, _ in second] == ["hit-exact"] * 4  # same context: every step from the cache
    assert [m.model_dump() for _, m in second] == [m.model_dump() for _, m in first]
    assert upstream_calls(semantic_cluster) == calls

    # The tests now pass: every step after the changed tool result is new, never an old step replayed.
    changed = run_tool_loop(client, question, {**results, "run_tests": "all 12 passed"})
    assert [outcome for outcome, _ in changed] == ["hit-exact", "hit-exact", "hit-exact", "miss"]
    assert changed[-1][1].content != first[-1][1].content
    changed_earlier = run_tool_loop(client, question, {**results, "search_docs": "flexbox docs: use margin auto"})
    assert [outcome for outcome, _ in changed_earlier] == ["hit-exact", "miss", "miss", "miss"]
    assert all(json.loads(m.tool_calls[0].function.arguments)["step"] == i
               for i, (_, m) in enumerate(changed_earlier[:3]))  # fmt: skip
    assert [m.tool_calls[0].id for _, m in changed_earlier[1:3]] != [m.tool_calls[0].id for _, m in first[1:3]]


# -- feedback and invalidation reach the semantic tier -------------------------------------------


def test_negative_feedback_removes_an_entry_from_the_semantic_tier_at_once(semantic_cluster):
    key = "sk-semantic-feedback"
    client = sdk(semantic_cluster, key)
    learn(client, "How do I merge two dictionaries in Python?", semantic_cluster)
    hit = ask(client, "How can I merge two dictionaries in Python?")
    assert hit.headers["x-deja-cache"] == "hit-semantic"
    entry_id = hit.headers["x-deja-entry"]
    response = httpx.post(f"{semantic_cluster.gateway_url}/v1/cache/feedback",
                          json={"entry_id": entry_id, "correct": False},
                          headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert response.status_code == 200 and response.json()["semantic_points_removed"] == 1
    # at once: the paraphrase is a miss now, the exact question still a hit
    assert ask(client, "How can I merge two dictionaries in Python?").headers["x-deja-cache"] != "hit-semantic"
    exact = ask(client, "How do I merge two dictionaries in Python?")
    assert exact.headers["x-deja-cache"] == "hit-exact"
    stats = httpx.get(f"{semantic_cluster.gateway_url}/v1/admin/stats",
                      params={"tenant": blake3.blake3(key.encode()).hexdigest()},
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()  # fmt: skip
    assert stats["hits"]["semantic"] == 1 and stats["feedback"] == {"correct": 0, "incorrect": 1, "false_hit_rate": 1.0}
    # another tenant cannot send feedback on (or learn anything about) this entry
    other = httpx.post(f"{semantic_cluster.gateway_url}/v1/cache/feedback",
                       json={"entry_id": entry_id, "correct": False},
                       headers={"Authorization": "Bearer sk-someone-else"})  # fmt: skip
    assert other.status_code == 404


def test_admin_invalidation_by_prompt_clears_both_tiers(semantic_cluster):
    key = "sk-semantic-invalidate"
    client = sdk(semantic_cluster, key)
    learn(client, "What is the capital of Australia?", semantic_cluster)
    learn(client, "How do I reverse a string in Go?", semantic_cluster)
    tenant = blake3.blake3(key.encode()).hexdigest()
    response = httpx.post(f"{semantic_cluster.gateway_url}/v1/admin/invalidate",
                          json={"tenant": tenant, "prompt": "capital of australia"},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
    body = response.json()
    assert response.status_code == 200 and body["deleted"] == 1 and body["semantic_points_deleted"] == 1
    assert body["entries"][0]["prompt"] == "What is the capital of Australia?"
    assert semantic_points(semantic_cluster, key) == 1  # only the Go question is left in the index
    assert ask(client, "What's the capital city of Australia?").headers["x-deja-cache"] == "miss"
    assert ask(client, "How can I reverse a string in Go?").headers["x-deja-cache"] == "hit-semantic"


def metric(url: str, name: str) -> float:
    """One unlabelled sample of a Prometheus text page (a counter, or a histogram's _count / _sum)."""
    (value,) = [float(line.split()[1]) for line in httpx.get(url).text.splitlines() if line.split(" ")[0] == name]
    return value


def candidates_scored(cluster) -> tuple[float, float]:
    """(lookups, candidates verified) so far, from the gateway's deja_semantic_candidates histogram."""
    url = f"{cluster.gateway_url}/metrics"
    return metric(url, "deja_semantic_candidates_count"), metric(url, "deja_semantic_candidates_sum")


def test_the_nearest_candidate_is_verified_alone_when_it_clears(semantic_cluster):
    client = sdk(semantic_cluster, "sk-semantic-nearest")
    answer = learn(client, "How do I center a div horizontally with CSS?", semantic_cluster)
    learn(client, "How do I center a div horizontally with JavaScript?", semantic_cluster)
    lookups, verified = candidates_scored(semantic_cluster)
    raw = ask(client, "How can I horizontally center a div using CSS?")
    assert raw.headers["x-deja-cache"] == "hit-semantic"
    assert raw.parse().choices[0].message.content == answer.choices[0].message.content
    # Both cached questions pass the cosine prefilter, but the nearest one cleared: one verified, not two.
    assert candidates_scored(semantic_cluster) == (lookups + 1, verified + 1)
    # Asked again as itself (a semantic hit writes no exact entry), the pairing's verdict is remembered.
    calls = verify_calls(semantic_cluster)
    again = ask(client, "How can I horizontally center a div using CSS?")
    assert again.headers["x-deja-cache"] == "hit-semantic"
    assert float(again.headers["x-deja-verifier-score"]) == float(raw.headers["x-deja-verifier-score"])
    assert verify_calls(semantic_cluster) == calls


def verify_calls(cluster) -> float:
    """Verify calls the verifier service has answered (its deja_verifier_score_seconds histogram)."""
    return metric(f"http://127.0.0.1:{cluster.metrics_ports['verifier']}/metrics", "deja_verifier_score_seconds_count")
