"""The gateway end to end: the real openai SDK -> gateway -> store -> Redis, mock provider upstream."""

import httpx
import openai
import orjson
import pytest

from tests.helpers import access_lines, sdk, unique_prompt, upstream_calls, wait_for_hit

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"


def stream_text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_second_identical_request_is_an_exact_hit_without_calling_upstream(cluster):
    client, messages = sdk(cluster), unique_prompt()
    first = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert first.headers["x-deja-cache"] == "miss"
    calls = upstream_calls(cluster)
    second = wait_for_hit(client, model=MODEL, messages=messages)
    assert second.headers["x-deja-cache"] == "hit-exact"
    assert int(second.headers["age"]) >= 0
    assert second.headers["x-deja-entry"]
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage.total_tokens == first.parse().usage.total_tokens
    assert upstream_calls(cluster) == calls


def test_a_different_question_or_parameter_is_a_miss(cluster):
    client, messages = sdk(cluster), unique_prompt()
    client.chat.completions.create(model=MODEL, messages=messages)
    wait_for_hit(client, model=MODEL, messages=messages)
    other = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, temperature=0.1)
    assert other.headers["x-deja-cache"] == "miss"
    reworded = client.chat.completions.with_raw_response.create(model=MODEL, messages=unique_prompt())
    assert reworded.headers["x-deja-cache"] == "miss"


def test_streamed_miss_is_cached_and_replayed_to_both_kinds_of_client(cluster):
    client, messages = sdk(cluster), unique_prompt("Explain SSE")
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, stream=True)
    assert raw.headers["x-deja-cache"] == "miss"
    streamed = stream_text(raw.parse())
    plain = wait_for_hit(client, model=MODEL, messages=messages)
    assert plain.parse().choices[0].message.content == streamed
    assert plain.parse().choices[0].finish_reason == "stop"

    calls = upstream_calls(cluster)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-deja-cache"] == "hit-exact"
    chunks = list(raw.parse())
    assert stream_text(chunks) == streamed
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # a real stream, not one blob
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert upstream_calls(cluster) == calls


def test_non_streamed_entry_serves_a_streaming_client(cluster):
    client, messages = sdk(cluster), unique_prompt()
    answer = client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
    wait_for_hit(client, model=MODEL, messages=messages)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, stream=True)
    assert raw.headers["x-deja-cache"] == "hit-exact"
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert stream_text(raw.parse()) == answer


def test_no_store_bypasses_the_cache_entirely(cluster):
    client, messages = sdk(cluster), unique_prompt()
    headers = {"Cache-Control": "no-store"}
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, extra_headers=headers)
        assert raw.headers["x-deja-cache"] == "bypass"
    # nothing was written: a normal request afterwards is still a miss
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert raw.headers["x-deja-cache"] == "miss"


def test_no_cache_refreshes_the_entry(cluster):
    client, messages = sdk(cluster), unique_prompt()
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, extra_headers={"Cache-Control": "no-cache"}
    )
    assert raw.headers["x-deja-cache"] == "refresh"
    assert wait_for_hit(client, model=MODEL, messages=messages).headers["x-deja-cache"] == "hit-exact"
    calls = upstream_calls(cluster)
    again = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, extra_headers={"Cache-Control": "no-cache"}
    )
    assert again.headers["x-deja-cache"] == "refresh"
    assert upstream_calls(cluster) == calls + 1


def test_one_tenant_never_sees_another_tenants_entries(cluster):
    alice, bob, messages = sdk(cluster, "sk-alice"), sdk(cluster, "sk-bob"), unique_prompt()
    alice.chat.completions.create(model=MODEL, messages=messages)
    assert wait_for_hit(alice, model=MODEL, messages=messages).headers["x-deja-cache"] == "hit-exact"
    raw = bob.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert raw.headers["x-deja-cache"] == "miss"


def test_requests_without_an_api_key_are_forwarded_but_never_cached(cluster):
    body = {"model": MODEL, "messages": unique_prompt()}
    first = httpx.post(f"{cluster.gateway_url}/v1/chat/completions", json=body)
    assert first.status_code == 401  # the provider's answer, passed through
    assert first.headers["x-deja-cache"] == "bypass"
    assert first.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(("status", "error"), [(500, openai.InternalServerError), (429, openai.RateLimitError)])
def test_upstream_errors_reach_the_client_and_are_never_cached(cluster, status, error):
    client, messages = sdk(cluster), unique_prompt()
    with pytest.raises(error) as info:
        client.chat.completions.create(model=MODEL, messages=messages, extra_headers={"x-mock-status": str(status)})
    assert info.value.status_code == status
    assert info.value.response.headers["x-deja-cache"] == "miss"
    assert "mock provider error" in info.value.message
    ok = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert ok.headers["x-deja-cache"] == "miss"  # the error was not cached


def test_unknown_model_is_the_providers_404_and_not_cached(cluster):
    client, messages = sdk(cluster), unique_prompt()
    for _ in range(2):
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="no-such-model", messages=messages)
        assert info.value.code == "model_not_found"


def test_a_broken_stream_reaches_the_client_as_an_error_and_is_not_cached(cluster):
    client, messages = sdk(cluster), unique_prompt("a long answer")
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, extra_headers={"x-mock-break-after": "3"}
    )
    with pytest.raises(openai.APIError):
        list(stream)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, stream=True)
    assert raw.headers["x-deja-cache"] == "miss"
    stream_text(raw.parse())


def test_a_client_that_hangs_up_mid_stream_leaves_no_entry(cluster):
    client, messages = sdk(cluster), unique_prompt("hang up early")
    with client.chat.completions.create(model=MODEL, messages=messages, stream=True) as stream:
        next(iter(stream))
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert raw.headers["x-deja-cache"] in ("miss", "hit-exact")  # hit only if the stream finished before close
    if raw.headers["x-deja-cache"] == "hit-exact":
        assert raw.parse().choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b'{"model": "gpt-4o-mini"}', 400, "messages"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
         "temperature"),
        (b'{"model": 7, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
    ],
)  # fmt: skip
def test_bad_input_gets_an_openai_style_4xx_and_no_stack_trace(cluster, body, status, param):
    response = httpx.post(
        f"{cluster.gateway_url}/v1/chat/completions",
        content=body,
        headers={"Authorization": "Bearer sk-a", "Content-Type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"
    assert "Traceback" not in response.text


def test_oversize_body_gets_413(cluster):
    huge = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 5_000_000}]})
    response = httpx.post(
        f"{cluster.gateway_url}/v1/chat/completions", content=huge, headers={"Authorization": "Bearer sk-a"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_sdk_sees_bad_request_as_its_own_exception(cluster):
    with pytest.raises(openai.BadRequestError) as info:
        sdk(cluster).chat.completions.create(model=MODEL, messages=[])
    assert info.value.param == "messages"


def test_health_readiness_models_and_unknown_routes(cluster):
    assert httpx.get(f"{cluster.gateway_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{cluster.gateway_url}/readyz").json() == {"status": "ok", "tiers": {"exact": "up"}}
    models = sdk(cluster).models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    missing = httpx.get(f"{cluster.gateway_url}/nowhere")
    assert missing.status_code == 404 and "error" in missing.json()


def test_store_service_offers_health_and_reflection(cluster):
    import grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(cluster.store_addr) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"deja.v1.StoreService", "grpc.health.v1.Health"} <= services


TOOLS = [{"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object", "properties": {}}}}]


def test_answers_that_call_tools_are_cached_exactly_and_replayed_in_both_shapes(cluster):
    client, messages = sdk(cluster), unique_prompt("Find the docs for flexbox")
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "search_docs"
    raw = wait_for_hit(client, model=MODEL, messages=messages, tools=TOOLS)
    assert raw.parse().choices[0].message.tool_calls[0].function.arguments == call.function.arguments
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == call.id and "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", "/v1/cache/entries/..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/v1/cache/nonexistent"),
        ("GET", "/v1/cache"),
        ("GET", "/v1/cache/entries/abc"),  # the route exists for DELETE only
        ("GET", "/v1/sessions/..%2f..%2fetc"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/cache/%2E%2E/models"),  # a dot-segment that would climb out of the namespace
    ],
)
@pytest.mark.parametrize("anthropic", [False, True])
def test_unknown_paths_in_dejas_own_namespaces_get_its_404_and_never_reach_the_provider(
    cluster, method, path, anthropic
):
    headers = {"Authorization": "Bearer sk-tenant-probe"}
    if anthropic:
        headers["anthropic-version"] = "2023-06-01"
    before = httpx.get(f"{cluster.mock_url}/mock/stats").json()
    # A raw path: httpx would otherwise normalise the dot-segments away before sending.
    url = httpx.URL(cluster.gateway_url).copy_with(raw_path=path.encode())
    response = httpx.request(method, url, headers=headers)
    assert response.status_code == 404, response.text
    assert "x-deja-cache" not in response.headers
    body = response.json()
    if anthropic:
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    else:
        assert body["error"]["code"] == "not_found" and body["error"]["type"] == "not_found_error"
    assert httpx.get(f"{cluster.mock_url}/mock/stats").json() == before  # `unrouted` too: nothing reached it


def test_the_recording_upstream_sees_a_path_deja_does_not_own(cluster):
    """The other side of the test above: an unknown path outside Deja's namespaces is passed through."""
    before = httpx.get(f"{cluster.mock_url}/mock/stats").json().get("unrouted", 0)
    response = httpx.get(f"{cluster.gateway_url}/v1/no-such-endpoint", headers={"Authorization": "Bearer sk-x"})
    assert response.status_code == 404 and response.headers["x-deja-cache"] == "bypass"
    assert httpx.get(f"{cluster.mock_url}/mock/stats").json()["unrouted"] == before + 1


def test_every_request_gets_one_access_line_without_keys(cluster):
    key = "sk-tenant-access-line"
    headers = {"Authorization": f"Bearer {key}"}
    paths = ["/v1/models", "/v1/cache/stats", "/v1/cache/nonexistent", "/healthz"]
    for path in paths:
        httpx.get(f"{cluster.gateway_url}{path}", headers=headers)
    seen = lambda lines: {("GET", p) for p in paths} <= {(line.get("method"), line.get("path")) for line in lines}  # noqa: E731
    logged = {(line.get("method"), line.get("path")): line for line in access_lines(cluster, seen)}
    assert logged[("GET", "/v1/models")]["cache"] == "bypass" and logged[("GET", "/v1/models")]["status"] == 200
    assert logged[("GET", "/v1/cache/stats")]["status"] == 200
    assert logged[("GET", "/v1/cache/nonexistent")]["status"] == 404
    assert logged[("GET", "/healthz")]["status"] == 200
    assert key not in cluster.log_path.read_text()


def test_entry_ids_are_scoped_to_the_tenant_and_stable(cluster):
    messages = unique_prompt("Which port does HTTPS use?")
    ids = {}
    for key in ("sk-tenant-ids-1", "sk-tenant-ids-2"):
        client = sdk(cluster, key)
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        wait_for_hit(client, model="gpt-4o-mini", messages=messages)
        seen = set()
        for _ in range(2):  # the same id on every hit
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
            assert raw.headers["x-deja-cache"] == "hit-exact"
            seen.add(raw.headers["x-deja-entry"])
        (ids[key],) = seen
        listed = httpx.get(f"{cluster.gateway_url}/v1/cache/entries", headers={"Authorization": f"Bearer {key}"})
        assert ids[key] in {entry["entry_id"] for entry in listed.json()["data"]}  # the id its listing shows
    assert ids["sk-tenant-ids-1"] != ids["sk-tenant-ids-2"]
