"""Per-request cache control: the header parser, and its effect end to end (real openai SDK ->
gateway -> store, mock provider upstream): TTL from max-age / X-Deja-TTL, freshness, namespaces,
bad values refused with a 400 that names the header and never cached."""

import time

import httpx
import pytest

from services.gateway.cache_headers import CacheControl, Policy, cache_control_from
from services.gateway.errors import ApiError
from services.gateway.semantic import SemanticTier
from tests.helpers import sdk, settled, unique_prompt, upstream_calls, wait_for_hit

MODEL = "gpt-4o-mini"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, CacheControl()),
        ({"cache-control": "no-store"}, CacheControl(Policy.BYPASS)),
        ({"cache-control": "No-Cache"}, CacheControl(Policy.REFRESH)),
        ({"cache-control": "max-age=60"}, CacheControl(ttl_s=60, max_age_s=60)),
        ({"cache-control": 'max-age="60", private'}, CacheControl(ttl_s=60, max_age_s=60)),
        ({"cache-control": "max-age=0"}, CacheControl(Policy.BYPASS)),  # nothing is fresh, nothing is kept
        ({"cache-control": "no-cache, max-age=30"}, CacheControl(Policy.REFRESH, ttl_s=30, max_age_s=30)),
        ({"cache-control": "max-age=60", "x-deja-ttl": "5"}, CacheControl(ttl_s=5, max_age_s=60)),
        ({"x-deja-ttl": "3600"}, CacheControl(ttl_s=3600)),
        ({"x-deja-namespace": "team-a/docs"}, CacheControl(namespace="team-a/docs")),
        ({"x-deja-semantic": "OFF"}, CacheControl(semantic=False)),
        ({"x-deja-semantic": "on"}, CacheControl()),
        ({"x-deja-threshold": "0.9"}, CacheControl(threshold=0.9)),
    ],
)
def test_headers_parse(headers, expected):
    assert cache_control_from(headers) == expected


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"cache-control": "max-age=soon"}, "Cache-Control"),
        ({"cache-control": "max-age=-1"}, "Cache-Control"),
        ({"cache-control": "max-age"}, "Cache-Control"),
        ({"x-deja-ttl": "0"}, "X-Deja-TTL"),
        ({"x-deja-ttl": "1.5"}, "X-Deja-TTL"),
        ({"x-deja-ttl": "\u0661\u0662"}, "X-Deja-TTL"),  # Arabic-Indic digits are not seconds
        ({"x-deja-namespace": "a b"}, "X-Deja-Namespace"),
        ({"x-deja-namespace": "x" * 65}, "X-Deja-Namespace"),
        ({"x-deja-semantic": "maybe"}, "X-Deja-Semantic"),
        ({"x-deja-threshold": "1.5"}, "X-Deja-Threshold"),
        ({"x-deja-threshold": "nan"}, "X-Deja-Threshold"),
        ({"x-deja-threshold": "strict"}, "X-Deja-Threshold"),
        ({"x-deja-format": "yaml"}, "X-Deja-Format"),
    ],
)
def test_bad_values_are_refused_naming_the_header(headers, param):
    with pytest.raises(ApiError) as info:
        cache_control_from(headers)
    assert info.value.status == 400 and info.value.param == param


def test_compact_answers_are_accepted_and_change_nothing_in_the_cache_control():
    # the conversion itself is services/gateway/compact_answers (tests/test_tauq_gateway.py)
    assert cache_control_from({"x-deja-format": " Tauq "}) == CacheControl()


def test_ttls_combine_with_the_time_sensitive_policy_and_thresholds_only_tighten():
    assert CacheControl(ttl_s=60).ttl_with(300) == 60
    assert CacheControl(ttl_s=3600).ttl_with(300) == 300  # never longer than the short TTL of "latest ..."
    assert CacheControl().ttl_with(300) == 300 and CacheControl(ttl_s=60).ttl_with(0) == 60
    tier = SemanticTier(embedder=None, index=None, verifier=None, store=None, k=5, min_similarity=0.75,
                        threshold=0.5, timeout_s=1.0, evidence=None, max_error=0.01, min_yes=0.25,
                        explore_rate=0.0)  # fmt: skip
    floors = [tier.budget_for(t, None, True).floor for t in (None, 0.9, 0.1)]
    assert floors == [0.5, 0.9, 0.5]
    budgets = [tier.budget_for(None, e, True).max_error for e in (None, 0.001, 0.2)]
    assert budgets == [0.01, 0.001, 0.01]  # X-Deja-Max-Error only ever tightens
    assert tier.budget_for(None, None, False).judge is False


# -- end to end -----------------------------------------------------------------------------


def entry_of(cluster, key: str, entry_id: str, namespace: str = "") -> dict:
    listed = httpx.get(
        f"{cluster.gateway_url}/v1/cache/entries",
        params={"namespace": namespace} if namespace else {},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["data"]
    return next(e for e in listed if e["entry_id"] == entry_id)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("headers", "ttl_s"),
    [({"Cache-Control": "max-age=120"}, 120), ({"X-Deja-TTL": "45"}, 45), ({"Cache-Control": "max-age=120",
      "X-Deja-TTL": "45"}, 45), ({}, 86_400)],
)  # fmt: skip
def test_the_entry_lives_as_long_as_the_request_asked(cluster, headers, ttl_s):
    key = "sk-cache-control-ttl"
    client, messages = sdk(cluster, key), unique_prompt()
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, extra_headers=headers)
    entry_id = raw.headers["x-deja-entry"]
    # Same headers while polling: on a loaded box a poll can still miss and store the answer again.
    wait_for_hit(client, model=MODEL, messages=messages, extra_headers=headers)
    entry = entry_of(cluster, key, entry_id)
    assert entry["expires_at"] - entry["created_at"] == ttl_s


@pytest.mark.integration
def test_a_short_ttl_expires_and_max_age_refuses_older_answers(cluster):
    client, messages = sdk(cluster, "sk-cache-control-age"), unique_prompt()
    client.chat.completions.create(model=MODEL, messages=messages, extra_headers={"X-Deja-TTL": "1"})
    other = unique_prompt()
    client.chat.completions.create(model=MODEL, messages=other)
    assert wait_for_hit(client, model=MODEL, messages=other).headers["x-deja-cache"] == "hit-exact"
    time.sleep(2.1)
    expired = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert expired.headers["x-deja-cache"] == "miss"
    old = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=other, extra_headers={"Cache-Control": "max-age=1"}
    )
    assert old.headers["x-deja-cache"] == "miss"  # the entry is two seconds old: too old for this client
    # that miss stored a fresh answer, which a client with a looser max-age is served
    # (until that write lands, the old entry is what max-age=600 gets: poll for the fresh one)
    fresh = settled(
        lambda: wait_for_hit(client, model=MODEL, messages=other, extra_headers={"Cache-Control": "max-age=600"}),
        lambda raw: int(raw.headers.get("age", "99")) <= 1,
        timeout_s=5,
    )
    assert fresh.headers["x-deja-cache"] == "hit-exact" and int(fresh.headers["age"]) <= 1


@pytest.mark.integration
def test_namespaces_partition_a_tenants_cache(cluster):
    key = "sk-cache-control-ns"
    client, messages = sdk(cluster, key), unique_prompt()
    docs = {"X-Deja-Namespace": "docs"}
    first = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, extra_headers=docs)
    assert wait_for_hit(client, model=MODEL, messages=messages, extra_headers=docs).headers["x-deja-cache"] == (
        "hit-exact"
    )
    for other in ({}, {"X-Deja-Namespace": "blog"}):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, extra_headers=other)
        assert raw.headers["x-deja-cache"] == "miss"
    assert entry_of(cluster, key, first.headers["x-deja-entry"], "docs")["namespace"] == "docs"


@pytest.mark.integration
@pytest.mark.parametrize(
    "headers",
    [{"Cache-Control": "max-age=x"}, {"X-Deja-TTL": "-5"}, {"X-Deja-Namespace": "no spaces"},
     {"X-Deja-Semantic": "sometimes"}, {"X-Deja-Threshold": "2"}, {"X-Deja-Format": "yaml"}],
)  # fmt: skip
def test_bad_cache_headers_get_a_clear_error_and_nothing_reaches_the_provider(cluster, headers):
    body = {"model": MODEL, "messages": unique_prompt()}
    calls = upstream_calls(cluster)
    response = httpx.post(
        f"{cluster.gateway_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-a", **headers}
    )
    assert response.status_code == 400 and "Traceback" not in response.text
    error = response.json()["error"]
    assert error["param"].lower() == next(iter(headers)).lower() and error["message"]
    assert upstream_calls(cluster) == calls
