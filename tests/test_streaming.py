"""Streaming fidelity through the gateway with the real openai SDK: a cached answer replayed to a
streaming client looks like a provider stream, and tool-call deltas and reasoning content survive
the round trip (streamed miss -> cache -> replay, in both shapes) unchanged."""

import statistics

import pytest

from tests.helpers import sdk, unique_prompt, upstream_calls, wait_for_hit

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in ("search_docs", "read_file")
]


def replayed(client, **request):
    """The chunks of a streamed exact hit (the entry must exist)."""
    raw = client.chat.completions.with_raw_response.create(stream=True, **request)
    assert raw.headers["x-deja-cache"] == "hit-exact"
    return list(raw.parse())


def test_a_replayed_stream_has_a_role_chunk_small_deltas_finish_reason_and_usage_last(cluster):
    client, messages = sdk(cluster, "sk-stream-shape"), unique_prompt("Explain the CSS box model in detail")
    answer = client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
    wait_for_hit(client, model=MODEL, messages=messages)
    calls = upstream_calls(cluster)
    chunks = replayed(client, model=MODEL, messages=messages, stream_options={"include_usage": True})
    assert upstream_calls(cluster) == calls
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    pieces = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == answer
    sizes = [len(p) for p in pieces]
    assert len(pieces) >= 8 and 4 <= statistics.median(sizes) <= 40 and max(sizes) <= 80  # a few words each
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0  # usage only in the final chunk
    assert all(c.usage is None for c in chunks[:-1])
    without = replayed(client, model=MODEL, messages=messages)
    assert all(c.usage is None for c in without) and without[-1].choices[0].finish_reason == "stop"


def test_tool_call_deltas_survive_cache_and_replay(cluster):
    client, messages = sdk(cluster, "sk-stream-tools"), unique_prompt("Look up flexbox and open its source")
    live = list(client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True))
    complete = wait_for_hit(client, model=MODEL, messages=messages, tools=TOOLS).parse().choices[0]
    [call] = complete.message.tool_calls
    assert complete.finish_reason == "tool_calls" and call.function.name == "search_docs"
    for chunks in (live, replayed(client, model=MODEL, messages=messages, tools=TOOLS)):
        deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
        assert deltas[0].id == call.id and deltas[0].function.name == call.function.name
        assert all(d.id is None and d.function.name is None for d in deltas[1:])  # then argument fragments
        assert len(deltas) > 2 and "".join(d.function.arguments or "" for d in deltas) == call.function.arguments
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [d.model_dump() for c in live if c.choices for d in c.choices[0].delta.tool_calls or ()] == [
        d.model_dump()
        for c in replayed(client, model=MODEL, messages=messages, tools=TOOLS)
        if c.choices
        for d in c.choices[0].delta.tool_calls or ()
    ]


def test_reasoning_content_survives_cache_and_replay(cluster):
    client, messages = sdk(cluster, "sk-stream-reasoning"), unique_prompt("Is 1009 prime?")
    request = dict(model=MODEL, messages=messages, reasoning_effort="low")

    def reasoning_of(chunks) -> str:
        return "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)

    live = list(client.chat.completions.create(stream=True, **request))
    thought = reasoning_of(live)
    assert thought.startswith("Thinking about")
    message = wait_for_hit(client, **request).parse().choices[0].message
    assert message.reasoning_content == thought
    assert message.content == "".join(c.choices[0].delta.content or "" for c in live if c.choices)
    again = replayed(client, **request)
    assert reasoning_of(again) == thought
    kinds = [("reasoning" if getattr(c.choices[0].delta, "reasoning_content", None) else "content")
             for c in again[1:] if c.choices and (c.choices[0].delta.content or
                                                   getattr(c.choices[0].delta, "reasoning_content", None))]  # fmt: skip
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")  # reasoning streams before the answer
