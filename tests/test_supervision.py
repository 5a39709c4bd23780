"""The supervised local cluster (`deja cluster`, `make run`): a tier that is SIGKILLed comes back by
itself, as its pod would, while the gateway keeps answering; Redis comes back from its append-only
file; only the gateway's exit ends the cluster."""

from __future__ import annotations

import os
import time

import pytest

from tests.helpers import make_cluster, sdk, unique_prompt, until, wait_for_hit

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
TIERS = ["redis", "store", "embedder", "semantic-index", "verifier", "mock-provider"]


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supervised")
    logged: list[tuple[str, str]] = []
    sink = lambda name, line: logged.append((name, line))  # noqa: E731
    with make_cluster(tmp, semantic=True, supervised=True, persist=True, backoff_first_s=0.2, sink=sink) as running:
        running.logged = logged
        yield running


@pytest.mark.parametrize("tier", TIERS)
def test_a_killed_tier_comes_back_by_itself_and_no_request_fails(supervised, tier):
    client = sdk(supervised, f"sk-supervised-{tier}")
    messages = unique_prompt("Which HTTP status means Too Many Requests?")
    client.chat.completions.create(model=MODEL, messages=messages)
    assert wait_for_hit(client, model=MODEL, messages=messages).headers["x-deja-cache"] == "hit-exact"
    proc = supervised.procs[tier]
    pid = proc.popen.pid

    supervised.kill(tier)
    if tier != "mock-provider":  # without its provider a miss is the provider's error, not the cache's
        for _ in range(3):  # meanwhile the gateway fails open: new questions still get their answers
            answer = client.chat.completions.create(model=MODEL, messages=unique_prompt("What is a 503?"))
            assert answer.choices[0].message.content

    until(lambda: proc.running and proc.popen.pid != pid and proc.ready(), f"{tier} restarted and ready", timeout_s=60)
    assert any(name == "cluster" and line.startswith(f"{tier} exited") for name, line in supervised.logged)
    # Back to normal: the entry cached before the crash is served again (Redis replays its AOF).
    until(
        lambda: (
            client.chat.completions.with_raw_response.create(model=MODEL, messages=messages).headers["x-deja-cache"]
            == "hit-exact"
        ),
        "the entry cached before the crash is a hit again",
        timeout_s=20,
    )
    assert supervised.procs["gateway"].running


def test_an_unsupervised_cluster_leaves_a_dead_tier_dead(own_cluster):
    running = own_cluster()
    running.kill("store")
    time.sleep(1.5)
    assert not running.procs["store"].running


def test_the_model_tiers_run_nicer_than_the_request_path_restarts_included(supervised):
    """Every thread of the embedder and the verifier (restarted by the test above) runs `model_nice`
    below the gateway, the store and Redis, which keep the runner's own priority."""

    def niceness(tier: str) -> set[int]:
        pid = supervised.procs[tier].popen.pid
        return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}

    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert supervised.model_nice > 0
    for tier in ("gateway", "store", "redis"):
        assert niceness(tier) == {base}, tier
    for tier in ("embedder", "verifier"):
        assert niceness(tier) == {min(base + supervised.model_nice, 19)}, tier
