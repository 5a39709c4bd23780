"""Anthropic's SSE sequence: a stored message replays as the provider's event stream and assembles
back to the same message (in our assembler and in the real anthropic SDK's)."""

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from services.gateway.anthropic.format import ANTHROPIC
from services.gateway.anthropic.request import parse_messages_request
from services.gateway.anthropic.sse import MessageAssembler, calls_tools, is_cacheable, replay_events
from services.gateway.errors import ApiError

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants  a centred div; flexbox.", "signature": "sig_abc"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "  Use flexbox:\n\n```css\n.parent { display: flex; }\n```\nDone.  "},
        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "flex \u00e9", "n": 3, "deep": [1, {}]}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 40},
}


def events(stream: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in stream.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


@pytest.mark.parametrize("split_every", [None, 1, 11])
def test_replay_then_assemble_gives_back_the_same_message(split_every):
    stream = b"".join(replay_events(MESSAGE))
    assembler = MessageAssembler()
    step = split_every or len(stream)
    forwarded = b"".join(assembler.feed(stream[i : i + step]) for i in range(0, len(stream), step))
    assert forwarded == stream  # nothing is hidden or rewritten on the way through
    assert assembler.done and assembler.error is None
    assert assembler.completion() == MESSAGE


def test_the_real_sdk_accumulates_the_replay_into_the_same_message():
    snapshot, json_bufs = None, {}
    for _name, payload in events(b"".join(replay_events(MESSAGE))):
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot.to_dict(exclude_none=True) == {k: v for k, v in MESSAGE.items() if v is not None}


def test_replay_follows_anthropics_event_sequence_with_realistic_deltas():
    names = [name for name, _ in events(b"".join(replay_events(MESSAGE)))]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1:3] == ["content_block_start", "ping"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 4
    parsed = events(b"".join(replay_events(MESSAGE)))
    start = parsed[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 12
    text = [p["delta"]["text"] for n, p in parsed if n == "content_block_delta" and p["delta"]["type"] == "text_delta"]
    assert len(text) > 3 and all(len(piece) < 40 for piece in text)
    json = [p["delta"] for n, p in parsed if n == "content_block_delta" and p["delta"]["type"] == "input_json_delta"]
    assert len(json) > 1
    assert parsed[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def test_errors_and_incomplete_streams_are_never_complete():
    stream = b"".join(replay_events(MESSAGE))
    cut = MessageAssembler()
    cut.feed(stream[: len(stream) // 2])
    assert not cut.done
    failed = MessageAssembler()
    failed.feed(stream[:200] + b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n')
    assert failed.error == {"type": "overloaded_error"}


def test_cacheable_and_tool_calls():
    assert is_cacheable(MESSAGE) and calls_tools(MESSAGE)
    text_only = {**MESSAGE, "content": [MESSAGE["content"][2]], "stop_reason": "end_turn"}
    assert is_cacheable(text_only) and not calls_tools(text_only)
    assert not is_cacheable({**MESSAGE, "stop_reason": "refusal"})
    assert not is_cacheable({**MESSAGE, "stop_reason": None})


def request(body: dict, **headers):
    return parse_messages_request(orjson.dumps(body), headers)


BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi there"}]}


def test_key_ignores_stream_and_metadata_but_not_headers_that_change_the_answer():
    base = request(BODY, **{"anthropic-version": "2023-06-01"}).cache_key()
    assert request({**BODY, "stream": True, "metadata": {"user_id": "u"}}, **{"anthropic-version": "2023-06-01"})
    assert base == request({**BODY, "stream": True}, **{"anthropic-version": "2023-06-01"}).cache_key()
    assert base == request({**BODY, "metadata": {"user_id": "u"}}, **{"anthropic-version": "2023-06-01"}).cache_key()
    assert base != request(BODY, **{"anthropic-version": "2023-06-01", "anthropic-beta": "x"}).cache_key()
    assert base != request({**BODY, "max_tokens": 101}, **{"anthropic-version": "2023-06-01"}).cache_key()
    assert base != request({**BODY, "system": "be brief"}, **{"anthropic-version": "2023-06-01"}).cache_key()
    with_temp = request({**BODY, "temperature": 1}, **{"anthropic-version": "2023-06-01"}).cache_key()
    assert with_temp == request({**BODY, "temperature": 1.0}, **{"anthropic-version": "2023-06-01"}).cache_key()


def test_semantic_parts_use_the_question_and_a_context_of_their_own():
    parts = ANTHROPIC.semantic_parts(request({**BODY, "system": "be brief"}))
    assert parts.query == "hi there"
    other = ANTHROPIC.semantic_parts(request({**BODY, "system": "be verbose"}))
    assert other.context_hash != parts.context_hash
    tool_turn = {
        **BODY,
        "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "4"}]}],
    }
    assert ANTHROPIC.semantic_parts(request(tool_turn)).query is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({**BODY, "temperature": "hot"}, "temperature"),
        ({**BODY, "stop_sequences": "x"}, "stop_sequences"),
    ],
)
def test_bad_requests_name_the_field(body, field):
    with pytest.raises(ApiError) as info:
        request(body)
    assert info.value.status == 400 and info.value.message.startswith(field)
    rendered = orjson.loads(ANTHROPIC.error_response(info.value).body)
    assert rendered == {"type": "error", "error": {"type": "invalid_request_error", "message": info.value.message}}
