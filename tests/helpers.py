"""Plain helpers shared by the tests: polling, starting gRPC services (in this process or as a
subprocess), a cluster's options and its clients. Test files import helpers from here, never from
conftest.py or from another test file; what sets up and tears down a resource is a fixture in
conftest.py. The services' own modules are imported where a helper starts one, so that importing
this module (conftest.py does, for every test) needs only deja.clients and tools.cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import openai
import pytest

from deja.clients import SemanticIndexClient
from tools.cluster import Cluster, grpc_ready, verifier_only_env

MODEL = "gpt-4o-mini"
TEST_MOCK_LATENCY_MS = 20  # hits and misses stay distinguishable; the suite stays fast

# A store/session test marked with this runs twice: on the single Redis-protocol server and on the
# Valkey Cluster (the `any_redis_url` fixture in conftest.py gives it the URL of each).
on_every_redis = pytest.mark.parametrize("any_redis_url", ["server", "cluster"], indirect=True)


# -- polling -------------------------------------------------------------------------------------


def until(condition: Callable[[], Any], what: str = "condition", timeout_s: float = 10.0, interval_s: float = 0.05):
    """Poll `condition()` until it returns something truthy, and return that; fail the test after
    `timeout_s` (a loaded CI box can take seconds for work done in the background)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not reached after {timeout_s:g}s"
        time.sleep(interval_s)
    return value


async def until_async(
    condition: Callable[[], Any], what: str = "condition", timeout_s: float = 10.0, interval_s: float = 0.02
):
    """`until` inside an event loop: `condition()` may return an awaitable (an async check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached after {timeout_s:g}s"
        await asyncio.sleep(interval_s)


def settled(read: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 10.0, interval_s: float = 0.05):
    """`read()` until `done(value)` holds, or its last value after `timeout_s`: the caller's own
    assertion then says what it was."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


# -- gRPC services ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def in_process(service: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task]:
    """Run a gRPC service (`run_grpc_service(...)` or a service's `serve(...)`) as a task of this loop;
    leaving stops it as an orchestrator does, with SIGTERM (see `stop_in_process`)."""
    task = asyncio.create_task(service)
    try:
        yield task
    finally:
        await stop_in_process(task)


async def stop_in_process(task: asyncio.Task) -> None:
    """SIGTERM to this process, which the running service's handler (run_grpc_service) turns into a
    graceful stop; then wait for it. Sent only once the handler is there (a SIGTERM before would end
    the test run)."""
    if not task.done():
        await until_async(
            lambda: task.done() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL,
            "the service's SIGTERM handler",
        )
    if not task.done():
        os.kill(os.getpid(), signal.SIGTERM)
    await task


@contextlib.contextmanager
def process(argv: list[str], ready: Callable[[], bool], what: str, *, env: dict[str, str] | None = None,
            log: Path | None = None, timeout_s: float = 60.0) -> Iterator[subprocess.Popen]:  # fmt: skip
    """A process that is ready once `ready()` holds; terminated when the block ends."""
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out if log is not None else None)
    try:
        until(lambda: proc.poll() is not None or ready(), f"{what} started", timeout_s, 0.02)
        assert proc.poll() is None, f"{what} exited with {proc.returncode}" + (f" (see {log})" if log else "")
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        if log is not None:
            out.close()


@contextlib.contextmanager
def service_process(name: str, port: int, env: dict[str, str], log: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """A Deja gRPC service as its own process (`python -m services serve NAME`); yields its address."""
    addr = f"127.0.0.1:{port}"
    argv = [sys.executable, "-m", "services", "serve", name]
    with process(argv, lambda: grpc_ready(addr), name, env={**os.environ, **env}, log=log, timeout_s=timeout_s):
        yield addr


def store_service(redis_url: str, port: int, **limits: int) -> Coroutine[Any, Any, None]:
    """The exact store's gRPC service over `redis_url` (readiness probed every 50 ms), for `in_process`."""
    from deja.grpc_server import run_grpc_service
    from deja.v1 import store_pb2_grpc
    from services.store.main import SERVICE_NAME as STORE_SERVICE
    from services.store.redis_store import RedisExactStore
    from services.store.servicer import StoreServicer

    exact = RedisExactStore.from_url(redis_url, timeout_ms=200, pool_size=4, **limits)

    async def reachable() -> bool:
        try:
            return await exact.ping()
        except Exception:
            return False

    return run_grpc_service(
        name="store",
        host="127.0.0.1",
        port=port,
        register=lambda server: store_pb2_grpc.add_StoreServiceServicer_to_server(StoreServicer(exact), server),
        service_names=[STORE_SERVICE],
        probe=reachable,
        probe_interval_s=0.05,
        grace_s=0.5,
        on_stop=exact.close,
    )


def embedder_service(embedder, port: int, **env: str) -> Coroutine[Any, Any, None]:
    """The embedder's own `serve()` around a built `Embedder` on `port`, for `in_process`; `env`: more
    DEJA_EMBEDDER_* settings (its limits, say)."""
    from deja.settings import load
    from services.embedder.main import serve as serve_embedder
    from services.embedder.settings import EmbedderSettings

    settings = load(EmbedderSettings, {"DEJA_EMBEDDER_PORT": str(port), "DEJA_EMBEDDER_METRICS_PORT": "0", **env})
    return serve_embedder(settings, embedder)


async def serving(client, service: str, timeout_s: float = 10.0) -> None:
    """Until the service behind a deja.clients client reports SERVING (its health check)."""
    await until_async(lambda: client.serving(service), f"{service} SERVING", timeout_s)


# -- a whole cluster -------------------------------------------------------------------------------


def file_sink(path: Path):
    handle = path.open("a", buffering=1)

    def sink(name: str, line: str) -> None:
        handle.write(f"{name:<14}| {line}\n")

    return sink


def make_cluster(tmp: Path, **overrides) -> Cluster:
    """A cluster on free ports (not started: `with make_cluster(...) as running` starts and stops it),
    its tiers' lines in tmp/cluster.log."""
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


def sdk(running: Cluster, api_key: str = "sk-tenant-a") -> openai.OpenAI:
    """The real openai SDK pointed at the gateway, retries off so every error is seen."""
    return openai.OpenAI(base_url=f"{running.gateway_url}/v1", api_key=api_key, max_retries=0, timeout=10)


def access_lines(running: Cluster, done, timeout_s: float = 5.0) -> list[dict]:
    """The gateway's access lines (parsed), read until `done(lines)` or `timeout_s` (lines are flushed
    a little after the response)."""

    def read() -> list[dict]:
        return [
            json.loads(line.split("| ", 1)[1])
            for line in running.log_path.read_text().splitlines()
            if line.startswith("gateway") and '"request"' in line
        ]

    return settled(read, done, timeout_s, 0.1)


def upstream_calls(running: Cluster) -> int:
    return httpx.get(f"{running.mock_url}/mock/stats").json().get("chat_completions", 0)


def unique_prompt(text: str = "How do I center a div?") -> list[dict]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex[:8]}]"}]


def wait_for_stored(client: openai.OpenAI, prompt: str, timeout_s: float = 10.0) -> None:
    """Until the tenant's cache lists an entry for `prompt` (written after the response). Polling the
    listing, not the chat endpoint: a chat request that came too early would be a miss that stores
    the answer again, and for an answer that differs per request (tool-call ids) replace the first."""
    url = str(client.base_url).rstrip("/") + "/cache/entries"
    headers = {"authorization": f"Bearer {client.api_key}"}

    def listed() -> bool:
        response = httpx.get(url, params={"prompt": prompt[:200]}, headers=headers)
        return response.status_code == 200 and bool(response.json()["data"])

    settled(listed, bool, timeout_s)


def stored_entries(client: openai.OpenAI) -> int:
    """How many entries the client's tenant has in the cache (its own listing, /v1/cache/entries)."""
    url = str(client.base_url).rstrip("/") + "/cache/entries"
    return len(httpx.get(url, headers={"authorization": f"Bearer {client.api_key}"}).json()["data"])


def is_exact_hit(raw) -> bool:
    return raw.headers.get("x-deja-cache") == "hit-exact"


def wait_for_hit(client: openai.OpenAI, **request):
    """Cache writes happen after the response; wait until the entry is there, then ask (polling as
    a fallback where the listing cannot name the entry). The last raw response either way."""
    last_user = next((m for m in reversed(request.get("messages", [])) if m.get("role") == "user"), None)
    if last_user is not None and isinstance(last_user.get("content"), str) and request.get("extra_headers") is None:
        wait_for_stored(client, last_user["content"])
    # a loaded CI box can take seconds; a miss here re-stores the entry
    return settled(lambda: client.chat.completions.with_raw_response.create(**request), is_exact_hit, 10)


def until_hit(client, timeout_s: float = 10.0, **request):
    """Ask until the answer is an exact hit; the last raw response after `timeout_s`. `client`: an
    openai or anthropic SDK client, or any `with_raw_response.create`."""
    if hasattr(client, "messages"):
        create = client.messages.with_raw_response.create
    elif hasattr(client, "chat"):
        create = client.chat.completions.with_raw_response.create
    else:
        create = client
    return settled(lambda: create(**request), is_exact_hit, timeout_s)


# -- the semantic tier -----------------------------------------------------------------------------


def ask(client: openai.OpenAI, question: str, **params):
    return client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], **params
    )


def semantic_points(running: Cluster, api_key: str) -> int:
    """The tenant's points in the semantic index, asked of the index service itself."""

    async def count() -> int:
        index = SemanticIndexClient(f"127.0.0.1:{running.semantic_port}", timeout_s=5.0)
        try:
            return (await index.stats(blake3.blake3(api_key.encode()).hexdigest())).points
        finally:
            await index.close()

    return asyncio.run(count())


def learn(client: openai.OpenAI, question: str, running: Cluster, *, indexed: bool = True, **params):
    """A miss, then wait until its answer is in the cache: indexed (one more point of the tenant's in
    the semantic index, written after the exact entry), or with `indexed=False` (an answer the gateway
    keeps out of the semantic tier) an exact hit. Both writes happen after the response."""
    before = semantic_points(running, client.api_key) if indexed else 0
    first = ask(client, question, **params)
    assert first.headers["x-deja-cache"] == "miss"
    if indexed:  # a model version's first write creates its collection: slow on a busy host
        until(lambda: semantic_points(running, client.api_key) > before, "the answer indexed", 15)
    else:
        until(lambda: is_exact_hit(ask(client, question, **params)), "the answer cached", 10)
    return first.parse()


# -- traces ----------------------------------------------------------------------------------------


def missing_edges(spans, edges) -> list[tuple]:
    """The (parent service, parent span, child service, child span) edges absent from `spans`
    (tests/otlp_receiver.py's ReceivedSpan)."""
    by_id = {s.span_id: s for s in spans}
    present = {
        (by_id[s.parent_id].service, by_id[s.parent_id].name, s.service, s.name) for s in spans if s.parent_id in by_id
    }
    return [edge for edge in edges if edge not in present]
