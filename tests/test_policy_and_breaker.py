import asyncio
import time

import grpc
import pytest
import structlog
import structlog.testing
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deja.clients import CircuitBreaker, CircuitOpen, DependencyTimeout, failed_open
from deja.clients.base import DependencyUnavailable, GrpcClient
from services.gateway.cache_headers import Policy, policy_from
from services.gateway.identity import api_key_from, tenant_of
from services.gateway.semantic import VerdictMemo


@pytest.mark.parametrize(
    ("header", "policy"),
    [
        (None, Policy.NORMAL),
        ("", Policy.NORMAL),
        ("no-store", Policy.BYPASS),
        ("No-Cache", Policy.REFRESH),
        ("max-age=0, no-store", Policy.BYPASS),
        ("no-cache, no-store", Policy.BYPASS),
        ("max-age=60", Policy.NORMAL),
    ],
)
def test_cache_control(header, policy):
    assert policy_from(header) is policy


def test_api_key_and_tenant():
    assert api_key_from("Bearer sk-abc") == "sk-abc"
    assert api_key_from("bearer  sk-abc ") == "sk-abc"
    assert api_key_from("Basic xyz") is None
    assert api_key_from("Bearer ") is None
    assert api_key_from(None) is None
    tenant = tenant_of("sk-abc")
    assert tenant != tenant_of("sk-abd") and len(tenant) == 64 and "sk-abc" not in tenant


def test_breaker_opens_after_threshold_and_probes_after_cooldown():
    breaker = CircuitBreaker(threshold=3, cooldown_s=0.05)
    for _ in range(3):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.is_open and not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # one probe goes through
    assert not breaker.allow()  # the rest wait for its outcome
    breaker.record(True)
    assert not breaker.is_open and breaker.allow()


class HungHealth(health_pb2_grpc.HealthServicer):
    """A tier that accepts calls and never answers (SIGSTOPped, deadlocked)."""

    async def Check(self, request, context):
        await asyncio.sleep(3600)


async def test_calls_cut_off_by_the_callers_deadline_open_the_breaker():
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(HungHealth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = GrpcClient(f"127.0.0.1:{port}", timeout_s=0.2, breaker=CircuitBreaker(threshold=3, cooldown_s=60))
    try:
        stub = health_pb2_grpc.HealthStub(client.channel)
        # The caller's budget equals the call's deadline and wins the race: the call is cancelled.
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.call(stub.Check, health_pb2.HealthCheckRequest()), 0.2)
        assert client.breaker.is_open
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable, match="circuit open"):
            await client.call(stub.Check, health_pb2.HealthCheckRequest())
        assert time.monotonic() - started < 0.1  # skipped at once, no deadline waited out
    finally:
        await client.close()
        await server.stop(0)


def test_the_verdict_memo_is_an_lru_with_a_ttl():
    memo = VerdictMemo(size=2, ttl_s=0.05)
    memo.put("a", 0.9)
    memo.put("b", 0.1)
    assert memo.get("a") == 0.9  # "a" is now the most recent
    memo.put("c", 0.5)  # over the size: the least recent ("b") goes
    assert memo.get("b") is None and memo.get("a") == 0.9 and memo.get("c") == 0.5
    time.sleep(0.06)
    assert memo.get("a") is None  # past its TTL
    off = VerdictMemo(size=0, ttl_s=60)
    off.put("a", 0.9)
    assert off.get("a") is None


def test_the_breaker_logs_when_it_opens_and_closes_not_per_skipped_call():
    breaker = CircuitBreaker(threshold=3, cooldown_s=60, name="127.0.0.1:1")
    with structlog.testing.capture_logs() as logged:
        for _ in range(10):  # the three that open it, then seven more failures while open
            breaker.record(False)
        breaker.record(True)
    assert [(e["event"], e["log_level"]) for e in logged] == [("circuit_opened", "warning"), ("circuit_closed", "info")]
    assert logged[0]["dependency"] == "127.0.0.1:1" and logged[0]["failures"] == 3


def test_failing_open_is_a_warning_except_for_a_call_the_open_breaker_skipped():
    log = structlog.get_logger("test")
    with structlog.testing.capture_logs() as logged:
        failed_open(log, "x_failed_open", DependencyTimeout("store: deadline"))
        failed_open(log, "x_failed_open", CircuitOpen("store: circuit open"), tenant="t")
    assert [(e["log_level"], e["error"]) for e in logged] == [
        ("warning", "store: deadline"),
        ("debug", "store: circuit open"),
    ]
    assert logged[1]["tenant"] == "t" and isinstance(CircuitOpen("x"), DependencyUnavailable)
