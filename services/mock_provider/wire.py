"""The mock's own wire format, written from the providers' documented shapes (never the gateway's code,
so a wire-format bug in the gateway is not reproduced by the fake it is tested against).

OpenAI chat completions (https://platform.openai.com/docs/api-reference/chat-streaming):

    data: {"object": "chat.completion.chunk", "choices": [{"index", "delta", "logprobs", "finish_reason"}], ...}
    ...                                 first delta {"role": "assistant", "content": ""}, then pieces,
    data: {... "choices": [], "usage"}  with stream_options.include_usage (every other chunk: "usage": null)
    data: [DONE]
    error body: {"error": {"message", "type", "param", "code"}}

Anthropic Messages (https://docs.anthropic.com/en/docs/build-with-claude/streaming):

    event: message_start         {"type": "message_start", "message": {... "content": [], "usage"}}
    event: content_block_start   {"type": "content_block_start", "index", "content_block"}
    event: ping                  (once, after the first block starts)
    event: content_block_delta   text_delta | input_json_delta | thinking_delta | signature_delta
    event: content_block_stop
    event: message_delta         {"delta": {"stop_reason", "stop_sequence"}, "usage": {"output_tokens"}}
    event: message_stop
    error body (and `event: error`): {"type": "error", "error": {"type", "message"}}
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

WORDS_PER_PIECE = 3  # a few tokens per delta, as both providers stream text
JSON_CHARS_PER_PIECE = 24  # tool arguments / tool input stream as short JSON fragments
_WORD = re.compile(r"\s*\S+|\s+$")

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def text_pieces(text: str) -> Iterator[str]:
    """`text` in pieces of a few words (each with its leading whitespace); they join back to `text`."""
    words = _WORD.findall(text)
    for start in range(0, len(words), WORDS_PER_PIECE):
        yield "".join(words[start : start + WORDS_PER_PIECE])


def json_pieces(text: str) -> Iterator[str]:
    for at in range(0, len(text), JSON_CHARS_PER_PIECE):
        yield text[at : at + JSON_CHARS_PER_PIECE]


# --- OpenAI chat completions -------------------------------------------------------------------


def openai_error(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def data_line(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def completion_chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """A `chat.completion` (one choice, as the mock answers) as its `chat.completion.chunk` stream."""
    head = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "system_fingerprint": completion.get("system_fingerprint"),
    }
    if include_usage:
        head["usage"] = None  # documented: every chunk but the last carries "usage": null

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return data_line({**head, "choices": [choice]})

    [choice] = completion["choices"]
    message = choice["message"]
    content = message.get("content")
    yield chunk({"role": "assistant", "content": "" if content is not None else None, "refusal": None})
    for piece in text_pieces(message.get("reasoning_content") or ""):
        yield chunk({"reasoning_content": piece})  # reasoning providers stream it before the answer
    for piece in text_pieces(content or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call["function"]
        opening = {"index": index, "id": call["id"], "type": "function"}
        yield chunk({"tool_calls": [{**opening, "function": {"name": function["name"], "arguments": ""}}]})
        for piece in json_pieces(function["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield data_line({**head, "choices": [], "usage": completion["usage"]})
    yield DONE


# --- Anthropic Messages ------------------------------------------------------------------------


def anthropic_error_type(status: int) -> str:
    return ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def anthropic_error_event(error_type: str, message: str) -> bytes:
    return sse_event("error", anthropic_error(error_type, message))


def _block_events(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    def start(content_block: dict[str, Any]) -> bytes:
        return sse_event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": content_block}
        )

    def delta(payload: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": payload})

    kind = block["type"]
    if kind == "text":
        yield start({"type": "text", "text": ""})
        for piece in text_pieces(block["text"]):
            yield delta({"type": "text_delta", "text": piece})
    elif kind == "tool_use":
        yield start({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})
        for piece in json_pieces(orjson.dumps(block["input"]).decode()):
            yield delta({"type": "input_json_delta", "partial_json": piece})
    elif kind == "thinking":
        yield start({"type": "thinking", "thinking": ""})
        for piece in text_pieces(block["thinking"]):
            yield delta({"type": "thinking_delta", "thinking": piece})
        yield delta({"type": "signature_delta", "signature": block["signature"]})
    else:
        raise ValueError(f"the mock does not stream {kind} blocks")
    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})


def message_events(message: dict[str, Any]) -> Iterator[bytes]:
    """A `message` as Anthropic's event stream, message_start to message_stop."""
    usage = message["usage"]
    opening = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])},
    }
    yield sse_event("message_start", {"type": "message_start", "message": opening})
    for index, block in enumerate(message["content"]):
        for i, event in enumerate(_block_events(index, block)):
            yield event
            if index == 0 and i == 0:
                yield sse_event("ping", {"type": "ping"})
    final = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    yield sse_event(
        "message_delta", {"type": "message_delta", "delta": final, "usage": {"output_tokens": usage["output_tokens"]}}
    )
    yield sse_event("message_stop", {"type": "message_stop"})
