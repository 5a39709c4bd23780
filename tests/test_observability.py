"""Observability end to end: one trace per request across every tier (received over OTLP by an
in-process receiver), Prometheus metrics, per-tenant cache statistics and correlated logs."""

from __future__ import annotations

import json
import os
import secrets

import httpx
import pytest

from deja import telemetry
from services.gateway.identity import tenant_of
from tests.helpers import access_lines, learn, make_cluster, missing_edges, sdk, settled

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
GATEWAY, STORE, EMBEDDER, INDEX, VERIFIER = (
    "deja-gateway",
    "deja-store",
    "deja-embedder",
    "deja-semantic-index",
    "deja-verifier",
)
SERVER = "POST /v1/chat/completions"  # the gateway's HTTP server span

# (parent service, parent span, child service, child span): every edge must be in the trace.
LOOKUP_EDGES = [
    (GATEWAY, SERVER, GATEWAY, "deja.exact"),
    (GATEWAY, "deja.exact", GATEWAY, "EVALSHA"),  # the gateway reads the store's Redis itself (direct reads)
    (GATEWAY, SERVER, GATEWAY, "deja.embed"),
    (GATEWAY, "deja.embed", GATEWAY, "/deja.v1.EmbedderService/Embed"),
    (GATEWAY, "/deja.v1.EmbedderService/Embed", EMBEDDER, "/deja.v1.EmbedderService/Embed"),
    (EMBEDDER, "/deja.v1.EmbedderService/Embed", EMBEDDER, "MGET"),
    (GATEWAY, SERVER, GATEWAY, "deja.search"),
    (GATEWAY, "deja.search", GATEWAY, "/deja.v1.SemanticIndexService/Search"),
    (GATEWAY, "/deja.v1.SemanticIndexService/Search", INDEX, "/deja.v1.SemanticIndexService/Search"),
    (GATEWAY, SERVER, GATEWAY, "deja.verify"),
    (GATEWAY, "deja.verify", GATEWAY, "/deja.v1.VerifierService/Verify"),
    (GATEWAY, "/deja.v1.VerifierService/Verify", VERIFIER, "/deja.v1.VerifierService/Verify"),
    (VERIFIER, "/deja.v1.VerifierService/Verify", VERIFIER, "verifier.score"),
]
HIT_EDGES = [
    *LOOKUP_EDGES,
    (GATEWAY, SERVER, GATEWAY, "deja.fetch"),
    (GATEWAY, "deja.fetch", GATEWAY, "EVALSHA"),
]
MISS_EDGES = [
    *LOOKUP_EDGES,
    (EMBEDDER, "/deja.v1.EmbedderService/Embed", EMBEDDER, "embedder.infer"),  # a new text: the model ran
    (GATEWAY, SERVER, GATEWAY, "deja.upstream"),
    (GATEWAY, "deja.upstream", GATEWAY, "POST"),  # the httpx call to the provider
    # after the response, in the same trace: the answer is stored and indexed (the miss is counted in a
    # batch of the gateway's miss tally, outside any request's trace)
    (GATEWAY, SERVER, GATEWAY, "/deja.v1.StoreService/Put"),
    (GATEWAY, "/deja.v1.StoreService/Put", STORE, "/deja.v1.StoreService/Put"),
    (GATEWAY, SERVER, GATEWAY, "/deja.v1.SemanticIndexService/Upsert"),
    (GATEWAY, "/deja.v1.SemanticIndexService/Upsert", INDEX, "/deja.v1.SemanticIndexService/Upsert"),
]


@pytest.fixture(scope="module")
def traced(tmp_path_factory, otlp_receiver):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s instead of 5 s
        "OTEL_TRACES_SAMPLER": "always_on",
        # every indexed prompt is a candidate, so a miss walks through the verifier too
        "DEJA_SEMANTIC_MIN_SIMILARITY": "-1",
    }
    with make_cluster(tmp_path_factory.mktemp("observability"), semantic=True, extra_env=env) as running:
        yield running, otlp_receiver


def traceparent() -> tuple[str, str, str]:
    """A W3C traceparent of our own, so the test knows which trace a request lands in."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def ask(client, question: str):
    trace_id, parent, header = traceparent()
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], extra_headers={"traceparent": header}
    )
    return raw, trace_id, parent


def test_a_semantic_hit_and_a_miss_are_each_one_trace_through_every_tier(traced):
    running, receiver = traced
    client = sdk(running, "sk-observed")
    learn(client, "How do I center a div horizontally with CSS?", running)
    hit, trace_id, parent = ask(client, "How can I horizontally center a div using CSS?")
    assert hit.headers["x-deja-cache"] == "hit-semantic"
    spans = receiver.wait_for(trace_id, lambda spans: not missing_edges(spans, HIT_EDGES))
    assert not missing_edges(spans, HIT_EDGES), sorted({(s.service, s.name) for s in spans})
    # the gateway read both entries from Redis itself: a hit never calls the store service
    assert {s.service for s in spans} == {GATEWAY, EMBEDDER, INDEX, VERIFIER}
    (root,) = [s for s in spans if s.parent_id == parent]  # exactly one span continues our traceparent
    assert (root.service, root.name) == (GATEWAY, SERVER)
    assert root.attributes["deja.outcome"] == "hit-semantic"
    assert root.attributes["deja.tier"] == "semantic"
    assert 0.5 <= root.attributes["deja.verifier_score"] <= 1.0
    assert root.attributes["deja.candidates"] >= 1
    assert root.attributes["deja.model"] == MODEL
    assert len(root.attributes["deja.tenant"]) == 16 and "sk-observed" not in json.dumps(root.attributes)
    assert tenant_of("sk-observed").startswith(root.attributes["deja.tenant"])  # the store's tenant hash
    assert not [s for s in spans if "Health" in s.name], "health checks are not traced"

    miss, trace_id, parent = ask(client, "What is the boiling point of water at the top of Mount Everest?")
    assert miss.headers["x-deja-cache"] == "miss"
    spans = receiver.wait_for(trace_id, lambda spans: not missing_edges(spans, MISS_EDGES))
    assert not missing_edges(spans, MISS_EDGES), sorted({(s.service, s.name) for s in spans})
    assert {s.service for s in spans} == {GATEWAY, STORE, EMBEDDER, INDEX, VERIFIER}  # the store wrote the answer
    (root,) = [s for s in spans if s.parent_id == parent]
    assert root.attributes["deja.outcome"] == "miss" and root.attributes["deja.tier"] == "upstream"
    assert root.attributes["deja.candidates"] >= 1  # the verifier saw candidates and turned them down
    assert not [s for s in spans if "CountMisses" in s.name], "the batched miss count joined a request's trace"


def test_access_lines_carry_the_trace_id_and_per_tier_latencies_but_no_key_or_prompt(traced):
    running, _ = traced
    client = sdk(running, "sk-secret-logged")
    question = "Which HTTP status code means the resource was permanently moved?"
    raw, trace_id, _ = ask(client, question)
    assert raw.headers["x-deja-cache"] == "miss"
    lines = access_lines(running, lambda lines: any(line.get("trace_id") == trace_id for line in lines))
    mine = [line for line in lines if line.get("trace_id") == trace_id]
    (line,) = mine
    assert line["cache"] == "miss" and line["status"] == 200 and len(line["span_id"]) == 16
    assert {"exact", "embed", "search", "upstream"} <= set(line["tiers_ms"])
    text = running.log_path.read_text()
    assert "sk-secret-logged" not in text and question not in text


def test_metrics_count_outcomes_tiers_tokens_and_rpcs(traced):
    running, _ = traced
    client = sdk(running, "sk-metrics")
    learn(client, "What does the HTTP status code 418 mean?", running)
    assert ask(client, "What does the HTTP status code 418 mean?")[0].headers["x-deja-cache"] == "hit-exact"
    gateway = httpx.get(f"{running.gateway_url}/metrics").text
    assert 'deja_requests_total{api="openai",outcome="hit-exact"}' in gateway
    assert 'deja_requests_total{api="openai",outcome="miss"}' in gateway
    assert 'deja_tier_duration_seconds_count{tier="exact"}' in gateway
    assert 'deja_tier_duration_seconds_count{tier="upstream"}' in gateway
    assert _value(gateway, 'deja_tokens_served_total{kind="completion"}') > 0
    assert _value(gateway, 'deja_cost_saved_usd_total{model="gpt-4o-mini"}') > 0
    store = httpx.get(f"http://127.0.0.1:{running.metrics_ports['store']}/metrics").text
    assert _value(store, 'deja_grpc_server_handled_total{code="OK",method="/deja.v1.StoreService/Put"}') >= 1
    assert "grpc.health" not in store
    assert "deja_store_entries " in store and "deja_store_bytes " in store
    embedder = httpx.get(f"http://127.0.0.1:{running.metrics_ports['embedder']}/metrics").text
    assert _value(embedder, "deja_embedder_batch_texts_count") >= 1
    verifier = httpx.get(f"http://127.0.0.1:{running.metrics_ports['verifier']}/metrics").text
    assert "deja_verifier_score_bucket" in verifier


def _value(exposition: str, series: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not exposed")


def test_cache_stats_are_the_callers_own_by_tier(traced):
    running, _ = traced
    key = "sk-stats-tenant"
    client = sdk(running, key)
    learn(client, "How do I reverse a list in Python?", running)  # one miss
    assert ask(client, "How do I reverse a list in Python?")[0].headers["x-deja-cache"] == "hit-exact"
    assert ask(client, "How can I reverse a Python list?")[0].headers["x-deja-cache"] == "hit-semantic"
    stats = settled(  # misses are counted after the response
        lambda: httpx.get(
            f"{running.gateway_url}/v1/cache/stats", headers={"authorization": "Bearer sk-stats-tenant"}
        ).json(),
        lambda stats: stats["misses"] >= 1,
        timeout_s=5,
    )
    assert stats["misses"] == 1
    assert stats["hits"] == {"exact": 1, "semantic": 1, "judged": 0, "total": 2}
    assert stats["hit_rate"] == round(2 / 3, 4)
    assert stats["entries"] == 1 and stats["bytes"] > 0
    assert stats["tokens_saved"] > 0
    other = httpx.get(f"{running.gateway_url}/v1/cache/stats", headers={"authorization": "Bearer sk-other"}).json()
    assert (other["hits"]["total"], other["misses"], other["entries"]) == (0, 0, 0)
    anonymous = httpx.get(f"{running.gateway_url}/v1/cache/stats")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"


def test_nothing_is_traced_without_an_endpoint(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    assert telemetry.init("probe") is False
    assert telemetry.server_interceptors() == [] and telemetry.client_interceptors() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.init("probe") is False
