"""Anthropic's Messages API end to end: the real anthropic SDK -> gateway -> store, mock provider
speaking Anthropic's wire format upstream (JSON, SSE event sequence, tool_use, thinking, errors)."""

import uuid

import anthropic
import httpx
import orjson
import pytest

from tests.helpers import until_hit

pytestmark = pytest.mark.integration

MODEL = "claude-haiku-4-5"
TOOLS = [{"name": "search_docs", "description": "search", "input_schema": {"type": "object", "properties": {}}}]


def client(cluster, key: str = "sk-ant-tenant-a") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=cluster.gateway_url, api_key=key, max_retries=0, timeout=10)


def question(text: str = "How do I center a div?") -> list[dict]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex[:8]}]"}]


def upstream_messages(cluster) -> int:
    return httpx.get(f"{cluster.mock_url}/mock/stats").json().get("messages", 0)


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


def test_miss_then_exact_hit_without_calling_upstream(cluster):
    sdk, messages = client(cluster), question()
    first = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=messages)
    assert first.headers["x-deja-cache"] == "miss" and len(first.headers["x-deja-entry"]) == 64
    calls = upstream_messages(cluster)
    second = until_hit(sdk, model=MODEL, max_tokens=256, messages=messages)
    assert second.headers["x-deja-cache"] == "hit-exact"
    assert second.headers["x-deja-entry"] == first.headers["x-deja-entry"] and int(second.headers["age"]) >= 0
    assert second.parse().model_dump() == first.parse().model_dump()
    assert second.parse().content[0].text.startswith("Mock answer")
    assert upstream_messages(cluster) == calls
    # a different max_tokens or system prompt is another request
    other = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=255, messages=messages)
    assert other.headers["x-deja-cache"] == "miss"


def test_streamed_miss_is_cached_and_replayed_as_anthropics_event_sequence(cluster):
    sdk, messages = client(cluster), question("Explain server-sent events")
    with sdk.messages.stream(model=MODEL, max_tokens=256, messages=messages) as stream:
        streamed = stream.get_final_message()
    plain = until_hit(sdk, model=MODEL, max_tokens=256, messages=messages)
    assert plain.parse().model_dump() == streamed.model_dump()

    calls = upstream_messages(cluster)
    with sdk.messages.stream(model=MODEL, max_tokens=256, messages=messages) as stream:
        replayed = stream.get_final_message()
        assert stream.response.headers["x-deja-cache"] == "hit-exact"
    assert replayed.model_dump() == streamed.model_dump()
    assert upstream_messages(cluster) == calls

    body = {"model": MODEL, "max_tokens": 256, "messages": messages, "stream": True}
    raw = httpx.post(f"{cluster.gateway_url}/v1/messages", json=body,
                     headers={"x-api-key": "sk-ant-tenant-a", "anthropic-version": "2023-06-01"})  # fmt: skip
    assert raw.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in sse_events(raw.content)]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") > 3  # a real stream of small deltas, not one blob


def test_tool_use_is_cached_exactly_and_replayed_in_both_shapes(cluster):
    sdk, messages = client(cluster), question("Find the docs for flexbox")
    first = sdk.messages.create(model=MODEL, max_tokens=256, messages=messages, tools=TOOLS)
    call = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.name == "search_docs"
    raw = until_hit(sdk, model=MODEL, max_tokens=256, messages=messages, tools=TOOLS)
    assert raw.headers["x-deja-cache"] == "hit-exact"
    assert raw.parse().model_dump() == first.model_dump()
    with sdk.messages.stream(model=MODEL, max_tokens=256, messages=messages, tools=TOOLS) as stream:
        replayed = stream.get_final_message()
    assert replayed.model_dump() == first.model_dump()
    # the tool result turn is another request; its answer is text that finishes the loop
    follow_up = [
        *messages,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "flexbox docs"}]},
    ]
    final = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=256, messages=follow_up, tools=TOOLS)
    assert final.headers["x-deja-cache"] == "miss" and final.parse().stop_reason == "end_turn"


def test_thinking_blocks_survive_cache_and_replay(cluster):
    sdk, messages = client(cluster), question("Why is the sky blue?")
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with sdk.messages.stream(model=MODEL, max_tokens=2048, messages=messages, thinking=thinking) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].type == "thinking" and streamed.content[0].signature.startswith("sig_")
    hit = until_hit(sdk, model=MODEL, max_tokens=2048, messages=messages, thinking=thinking)
    assert hit.headers["x-deja-cache"] == "hit-exact"
    assert hit.parse().model_dump() == streamed.model_dump()
    with sdk.messages.stream(model=MODEL, max_tokens=2048, messages=messages, thinking=thinking) as stream:
        assert stream.get_final_message().model_dump() == streamed.model_dump()


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [(429, anthropic.RateLimitError, "rate_limit_error"), (500, anthropic.InternalServerError, "api_error"),
     (529, anthropic.InternalServerError, "overloaded_error")],
)  # fmt: skip
def test_provider_errors_pass_through_in_anthropics_shape_and_are_never_cached(cluster, status, error, kind):
    sdk, messages = client(cluster), question()
    with pytest.raises(error) as info:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=messages, extra_headers={"x-mock-status": str(status)})
    assert info.value.status_code == status
    assert info.value.body == {"type": "error", "error": {"type": kind, "message": f"mock provider error {status}"}}
    assert info.value.response.headers["x-deja-cache"] == "miss"
    ok = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=messages)
    assert ok.headers["x-deja-cache"] == "miss"


def test_unknown_model_and_gateway_errors_are_in_anthropics_shape(cluster):
    sdk = client(cluster)
    with pytest.raises(anthropic.NotFoundError) as info:
        sdk.messages.create(model="claude-nope", max_tokens=64, messages=question())
    assert info.value.body["error"]["type"] == "not_found_error"
    headers = {"x-api-key": "sk-ant-a", "anthropic-version": "2023-06-01", "content-type": "application/json"}
    for body, field in (
        (b"{not json", "request body"),
        (orjson.dumps({"model": MODEL, "messages": question()}), "max_tokens"),
        (orjson.dumps({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
         "messages.0.role"),
        (orjson.dumps({"model": MODEL, "max_tokens": 5, "messages": [{"role": ["user"], "content": "x"}]}),
         "messages.0.role"),  # unhashable
    ):  # fmt: skip
        response = httpx.post(f"{cluster.gateway_url}/v1/messages", content=body, headers=headers)
        assert response.status_code == 400 and "Traceback" not in response.text
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"].startswith(field)
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model=MODEL, max_tokens=64, messages=question(), extra_headers={"X-Deja-TTL": "soon"})


@pytest.mark.parametrize(
    ("fault", "error"),
    [({"x-mock-stream-error-after": "4"}, "Overloaded"), ({"x-mock-break-after": "5"}, "upstream stream broke off")],
)
def test_a_stream_that_fails_midway_reaches_the_client_as_an_error_and_is_not_cached(cluster, fault, error):
    """An in-band error event from the provider, or a connection broken off (the gateway sends the event)."""
    sdk, messages = client(cluster), question("a long answer")
    with pytest.raises(anthropic.APIStatusError) as info:
        with sdk.messages.stream(model=MODEL, max_tokens=64, messages=messages, extra_headers=fault) as stream:
            stream.get_final_message()
    assert error in str(info.value)
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=messages)
    assert raw.headers["x-deja-cache"] == "miss"


def test_tenants_come_from_the_api_key_and_never_share_entries(cluster):
    alice, bob, messages = client(cluster, "sk-ant-alice"), client(cluster, "sk-ant-bob"), question()
    alice.messages.create(model=MODEL, max_tokens=64, messages=messages)
    assert until_hit(alice, model=MODEL, max_tokens=64, messages=messages).headers["x-deja-cache"] == "hit-exact"
    assert (
        bob.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=messages).headers["x-deja-cache"]
        == "miss"
    )
    # without a key: forwarded (the provider's 401, in its shape), never cached
    body = {"model": MODEL, "max_tokens": 64, "messages": messages}
    response = httpx.post(f"{cluster.gateway_url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401 and response.headers["x-deja-cache"] == "bypass"
    assert response.json()["error"]["type"] == "authentication_error"


def test_an_openai_request_never_gets_an_anthropic_answer(cluster):
    """Same tenant key, same question, both APIs: two entries, each served only in its own shape."""
    import openai

    key, text = "sk-both-apis", f"What is a monad? [{uuid.uuid4().hex[:8]}]"
    claude = client(cluster, key)
    claude.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": text}])
    until_hit(claude, model=MODEL, max_tokens=64, messages=[{"role": "user", "content": text}])
    gpt = openai.OpenAI(base_url=f"{cluster.gateway_url}/v1", api_key=key, max_retries=0)
    raw = gpt.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": text}])
    assert raw.headers["x-deja-cache"] == "miss" and raw.parse().object == "chat.completion"
