import orjson
import pytest

from services.gateway.openai.sse import DONE, StreamAssembler, is_cacheable, replay_chunks

TEXT = "  Use flexbox:\n\n```css\n.parent { display: flex; justify-content: center; }\n```\nDone.  "

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": TEXT, "reasoning_content": "think  step by step"},
            "logprobs": None,
            "finish_reason": "stop",
        },
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "center", "arguments": '{"el": "div"}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "log", "arguments": "{}"}},
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        },
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39},
}


def assemble(chunks, split_every: int | None = None) -> StreamAssembler:
    assembler = StreamAssembler()
    data = b"".join(chunks)
    step = split_every or len(data)
    for start in range(0, len(data), step):  # arbitrary network boundaries, even mid-line
        assembler.feed(data[start : start + step])
    return assembler


@pytest.mark.parametrize("split_every", [None, 1, 7])
def test_replay_then_assemble_gives_back_the_same_completion(split_every):
    assembler = assemble(list(replay_chunks(COMPLETION, include_usage=True)), split_every)
    assert assembler.done and assembler.error is None
    assert assembler.completion() == COMPLETION


def test_replay_looks_like_a_provider_stream():
    chunks = list(replay_chunks(COMPLETION, include_usage=False))
    assert chunks[-1] == DONE
    events = [orjson.loads(c[len(b"data: ") :]) for c in chunks[:-1]]
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == "chatcmpl-1" for e in events)
    first = events[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""} and first["finish_reason"] is None
    first_choice = [e["choices"][0] for e in events if e["choices"][0]["index"] == 0]
    text_deltas = [c["delta"]["content"] for c in first_choice if "content" in c["delta"]]
    assert "".join(text_deltas) == TEXT
    assert len(text_deltas) > 5  # several deltas, not one blob
    assert not any("usage" in e for e in events)  # only when the client asked for it


def test_usage_chunk_only_when_asked():
    last_event = list(replay_chunks(COMPLETION, include_usage=True))[-2]
    payload = orjson.loads(last_event[len(b"data: ") :])
    assert payload["choices"] == [] and payload["usage"] == COMPLETION["usage"]


def test_a_stream_without_done_is_not_complete():
    chunks = list(replay_chunks(COMPLETION, include_usage=False))[:-1]
    assert not assemble(chunks).done


def test_an_error_event_is_recorded():
    assembler = assemble([b'data: {"error": {"message": "overloaded"}}\n\n', DONE])
    assert assembler.error == {"message": "overloaded"}


def test_only_normally_finished_answers_are_cacheable():
    assert is_cacheable(COMPLETION)
    cut = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "finish_reason": None}]}
    assert not is_cacheable(cut)
    filtered = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "finish_reason": "content_filter"}]}
    assert not is_cacheable(filtered)
    assert not is_cacheable({"choices": []})


def test_hidden_usage_chunk_is_not_forwarded_but_is_kept():
    stream = b"".join(replay_chunks(COMPLETION, include_usage=True))
    assembler = StreamAssembler(hide_usage=True)
    forwarded = b"".join(assembler.feed(stream[i : i + 5]) for i in range(0, len(stream), 5)) + assembler.flush()
    assert b'"usage"' not in forwarded
    assert forwarded == b"".join(replay_chunks(COMPLETION, include_usage=False))
    assert assembler.completion()["usage"] == COMPLETION["usage"]


def test_forwarded_bytes_are_the_stream_unchanged_when_nothing_is_hidden():
    stream = b"".join(replay_chunks(COMPLETION, include_usage=True)) + b": keep-alive comment\n\n"
    assembler = StreamAssembler()
    assert b"".join(assembler.feed(stream[i : i + 3]) for i in range(0, len(stream), 3)) == stream
