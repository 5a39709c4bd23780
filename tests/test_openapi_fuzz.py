"""/openapi.json describes the gateway as it is, and malformed requests thrown at every operation it
describes (schemathesis, negative mode: each request breaks the schema somewhere) never get a 5xx,
a stack trace or a cache entry."""

from __future__ import annotations

import urllib.parse

import blake3
import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from starlette.routing import Route

from deja.settings import load
from services.gateway.app import create_app
from services.gateway.openapi import SPEC
from services.gateway.settings import GatewaySettings
from tests.helpers import make_cluster

pytestmark = pytest.mark.integration

ADMIN_KEY = "fuzz-admin-key-0123456789"
FUZZ_KEY = "sk-fuzz-tenant"
EXAMPLES = 12  # per operation: the whole file stays well under a minute
# The passthrough and the 404s for unknown paths in Deja's own namespaces: not operations.
CATCH_ALL = {"/v1/{path:path}", "/v1/admin", "/v1/admin/{rest:path}", "/v1/cache", "/v1/cache/{rest:path}",
             "/v1/sessions", "/v1/sessions/{rest:path}"}  # fmt: skip

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "negative", "max-examples": EXAMPLES},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)


@pytest.fixture(scope="module")
def fuzz_cluster(tmp_path_factory):
    with make_cluster(tmp_path_factory.mktemp("fuzz"), extra_env={"DEJA_ADMIN_KEY": ADMIN_KEY}) as running:
        yield running


def test_the_description_lists_exactly_the_routes_the_app_serves():
    app = create_app(load(GatewaySettings, {}))
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path not in CATCH_ALL
        for method in route.methods - {"HEAD"}
    }
    described = {
        (path, method) for path, operations in SPEC["paths"].items() for method in operations if path != "/v1/models"
    }
    assert described == served
    assert {route.path for route in app.routes} >= CATCH_ALL  # /v1/models is served by the passthrough


def test_the_description_is_served_and_valid(fuzz_cluster):
    served = httpx.get(f"{fuzz_cluster.gateway_url}/openapi.json").json()
    assert served == SPEC
    assert served["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(served).validate()  # raises on a document that breaks the OpenAPI schema


def _auth_for(path: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY if path.startswith('/v1/admin/') else FUZZ_KEY}"}


@schema.parametrize()
def test_malformed_requests_never_get_a_5xx_a_stack_trace_or_an_entry(case, fuzz_cluster):
    # The right credentials, so that requests get past authentication into validation.
    headers = {**(case.headers or {}), **_auth_for(case.path)}
    if case.path == "/v1/messages":
        headers.setdefault("anthropic-version", "2023-06-01")
    response = case.call(base_url=fuzz_cluster.gateway_url, headers=headers, timeout=10)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text and 'File "' not in response.text
    if response.status_code >= 400:
        body = response.json()
        assert "error" in body, body  # OpenAI's shape, or Anthropic's {"type": "error", "error": ...}
    outcome = (response.headers.get("x-deja-cache") or [None])[0]
    assert outcome in (None, "miss", "bypass", "refresh")  # never served from the cache


PATHS = sorted(SPEC["paths"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
JUNK = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    ).map(orjson.dumps),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    method=st.sampled_from(METHODS),
    segment=st.text(min_size=1, max_size=40),
    query=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=3),
    body=JUNK,
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", None]),
)
def test_junk_at_every_path_and_method_is_refused_cleanly(fuzz_cluster, path, method, segment, query, body,
                                                           content_type):  # fmt: skip
    """Also the operations that take no input (where schemathesis has nothing to break): wrong methods,
    junk path segments, query strings and bodies."""
    url = fuzz_cluster.gateway_url + path.replace("{entry_id}", urllib.parse.quote(segment, safe="")).replace(
        "{session_id}", urllib.parse.quote(segment, safe="")
    )
    headers = {**_auth_for(path), **({"content-type": content_type} if content_type else {})}
    response = httpx.request(method, url, params=query, content=body, headers=headers, timeout=10)
    assert response.status_code < 500, (method, url, response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    assert response.headers.get("x-deja-cache") in (None, "miss", "bypass", "refresh")


def test_nothing_was_cached_for_the_fuzzing_tenant(fuzz_cluster):
    """Runs after the fuzzing (file order): every request above was malformed, so none may have left an entry."""
    listed = httpx.get(f"{fuzz_cluster.gateway_url}/v1/cache/entries", headers=_auth_for("/v1/cache/entries"))
    assert listed.status_code == 200 and listed.json()["data"] == []
    stats = httpx.get(
        f"{fuzz_cluster.gateway_url}/v1/admin/stats",
        params={"tenant": blake3.blake3(FUZZ_KEY.encode()).hexdigest()},
        headers=_auth_for("/v1/admin/stats"),
    ).json()
    assert stats["entries"] == 0 and stats["hits"]["total"] == 0
