import time

import pytest

from deja.clients import CircuitBreaker
from services.gateway.cache_policy import Policy, api_key_from, policy_from, tenant_of


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
