"""A cache that fails must fail open: with Redis or the store down, requests still succeed."""

import signal
import time

import httpx
import openai
import pytest

from tests.helpers import sdk, unique_prompt, until, upstream_calls, wait_for_hit
from tools.cluster import free_port

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"


def readiness(running) -> dict:
    return httpx.get(f"{running.gateway_url}/readyz").json()


def test_redis_killed_requests_still_succeed_then_recover(own_cluster):
    running = own_cluster()
    client, messages = sdk(running), unique_prompt()
    client.chat.completions.create(model=MODEL, messages=messages)
    assert wait_for_hit(client, model=MODEL, messages=messages).headers["x-deja-cache"] == "hit-exact"

    running.kill("redis")
    calls = upstream_calls(running)
    for stream in (False, True, False):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, stream=stream)
        assert raw.status_code == 200 and raw.headers["x-deja-cache"] == "miss"
        parsed = raw.parse()
        text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) if stream else None
        assert text or parsed.choices[0].message.content
    assert upstream_calls(running) == calls + 3
    until(lambda: readiness(running) == {"status": "degraded", "tiers": {"exact": "down"}})

    running.launch(running.procs["redis"])  # back (empty: this cluster does not persist)
    until(lambda: readiness(running)["status"] == "ok")
    fresh = unique_prompt()
    client.chat.completions.create(model=MODEL, messages=fresh)
    assert wait_for_hit(client, model=MODEL, messages=fresh).headers["x-deja-cache"] == "hit-exact"


def test_store_service_killed_requests_still_succeed(own_cluster):
    running = own_cluster()
    client, messages = sdk(running), unique_prompt()
    running.kill("store")
    started = time.perf_counter()
    for _ in range(8):  # enough to open the circuit breaker
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        assert raw.status_code == 200 and raw.headers["x-deja-cache"] == "miss"
    assert time.perf_counter() - started < 8 * 1.0  # no request waited out long timeouts
    assert readiness(running) == {"status": "degraded", "tiers": {"exact": "down"}}

    running.launch(running.procs["store"])
    until(lambda: readiness(running)["status"] == "ok")

    def cached_again() -> bool:
        client.chat.completions.create(model=MODEL, messages=messages)
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        return raw.headers["x-deja-cache"] == "hit-exact"

    until(cached_again, timeout_s=10)


def test_entries_survive_a_store_restart_and_a_persistent_redis_restart(own_cluster):
    running = own_cluster(persist=True)
    client, messages = sdk(running), unique_prompt()
    answer = client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
    wait_for_hit(client, model=MODEL, messages=messages)
    running.restart("store")
    running.restart("redis")  # SIGTERM: the append-only file is flushed
    until(lambda: readiness(running)["status"] == "ok")
    raw = wait_for_hit(client, model=MODEL, messages=messages)
    assert raw.headers["x-deja-cache"] == "hit-exact"
    assert raw.parse().choices[0].message.content == answer


def test_services_stop_gracefully_on_sigterm(own_cluster, tmp_path):
    running = own_cluster()
    for name in ("gateway", "mock-provider", "store", "redis"):
        running.terminate(name, timeout_s=15)
        # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is clean for it;
        # a SIGKILL (-9) after the timeout would not be.
        clean = (0, -signal.SIGTERM) if name in ("gateway", "mock-provider") else (0,)
        assert running.procs[name].popen.returncode in clean, f"{name} did not exit cleanly"
    log = (tmp_path / "cluster.log").read_text()
    assert '"event":"gateway_stopped"' in log  # the lifespan drained writes and closed clients
    assert '"event":"grpc_stopping"' in log and '"event":"grpc_stopped"' in log


def test_unreachable_upstream_is_a_clear_502(own_cluster):
    running = own_cluster(upstream=f"http://127.0.0.1:{free_port()}/v1")
    client = sdk(running)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model=MODEL, messages=unique_prompt(), stream=stream)
        assert info.value.status_code == 502
        assert info.value.code == "upstream_unreachable"
        assert "unreachable" in info.value.message
