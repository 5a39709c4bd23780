"""Server-sent events for OpenAI chat completions: assemble an upstream stream into one complete
response (what the cache stores), and replay a stored response as a stream.

`replay_chunks(assemble(stream))` yields a stream that assembles back to the same response,
so streaming and non-streaming clients share one cache entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from services.gateway.api_format import text_pieces

DONE = b"data: [DONE]\n\n"
CACHEABLE_FINISH = ("stop", "length", "tool_calls", "function_call")  # a tuple: an unhashable value is just "not in"


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def is_cacheable(completion: dict[str, Any]) -> bool:
    """Only complete answers: every choice ended for a normal reason."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") in CACHEABLE_FINISH for c in choices)


def calls_tools(completion: dict[str, Any]) -> bool:
    """An answer that calls tools (never served semantically: a tool loop must not replay a stale step)."""
    return any(
        (c.get("message") or {}).get("tool_calls") or (c.get("message") or {}).get("function_call")
        for c in completion.get("choices") or ()
    )


class StreamAssembler:
    """Feed raw SSE bytes as they pass through; `completion()` once `done` is True.

    `feed` returns the bytes to forward to the client. With `hide_usage`, the usage-only
    chunk is dropped from them: the gateway asks the provider for usage on every stream (so
    each entry can be priced) but a client that did not ask for it must not see it.
    """

    def __init__(self, hide_usage: bool = False) -> None:
        self._hide_usage = hide_usage
        self._buffer = b""
        self._skip_blank = False
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None
        self.done = False
        self.error: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        forward = []
        for line in lines:
            if self._line(line.rstrip(b"\r")):
                self._skip_blank = False
                forward.append(line + b"\n")
        return b"".join(forward)

    def flush(self) -> bytes:
        """Whatever trailed the last newline (a well-formed stream leaves nothing)."""
        rest, self._buffer = self._buffer, b""
        return rest

    def _line(self, line: bytes) -> bool:
        """Take in one line; False when it must not be forwarded."""
        if not line:
            return not self._skip_blank
        if not line.startswith(b"data:"):
            return True
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return True
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.error = {"message": "malformed chunk from upstream"}
            return True
        if not isinstance(chunk, dict):
            return True
        if "error" in chunk:
            self.error = chunk["error"]
            return True
        self._merge(chunk)
        if self._hide_usage and not chunk.get("choices") and chunk.get("usage"):
            self._skip_blank = True
            return False
        return True

    def _merge(self, chunk: dict[str, Any]) -> None:
        for field in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(field) is not None:
                self._head.setdefault(field, chunk[field])
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            slot = self._choices.setdefault(
                choice.get("index", 0), {"message": {}, "logprobs": None, "finish_reason": None, "tools": {}}
            )
            for key, value in (choice.get("delta") or {}).items():
                if value is not None:
                    _merge_delta(slot, key, value)
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if logprobs:
                merged = slot["logprobs"] or {}
                for key, items in logprobs.items():
                    if isinstance(items, list):
                        merged.setdefault(key, []).extend(items)
                slot["logprobs"] = merged

    def completion(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            message = {"role": "assistant", "content": None, **slot["message"]}
            if slot["tools"]:
                message["tool_calls"] = [slot["tools"][i] for i in sorted(slot["tools"])]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": slot["logprobs"],
                    "finish_reason": slot["finish_reason"],
                }
            )
        body: dict[str, Any] = {
            "id": self._head.get("id", ""),
            "object": "chat.completion",
            "created": self._head.get("created", 0),
            "model": self._head.get("model", ""),
            "choices": choices,
        }
        for field in ("system_fingerprint", "service_tier"):
            if field in self._head:
                body[field] = self._head[field]
        if self._usage is not None:
            body["usage"] = self._usage
        return body


def _merge_delta(slot: dict[str, Any], key: str, value: Any) -> None:
    message = slot["message"]
    if key == "tool_calls":
        for call in value:
            tool = slot["tools"].setdefault(
                call.get("index", 0),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.get("id"):
                tool["id"] = call["id"]
            if call.get("type"):
                tool["type"] = call["type"]
            function = call.get("function") or {}
            if function.get("name") and not tool["function"]["name"]:
                tool["function"]["name"] = function["name"]
            tool["function"]["arguments"] += function.get("arguments") or ""
    elif key == "function_call":
        current = message.setdefault("function_call", {"name": "", "arguments": ""})
        if value.get("name") and not current["name"]:
            current["name"] = value["name"]
        current["arguments"] += value.get("arguments") or ""
    elif key == "role":
        message["role"] = value
    elif isinstance(value, str):
        message[key] = (message.get(key) or "") + value
    elif isinstance(value, list) and isinstance(message.get(key), list):
        message[key].extend(value)
    else:
        message[key] = value


ARGUMENT_CHARS_PER_CHUNK = 24  # providers stream tool arguments as short JSON fragments


def _tool_call_chunks(index: int, i: int, call: dict[str, Any], chunk) -> Iterator[bytes]:
    """The call's id, type and name first (arguments ""), then its arguments in fragments."""
    function = call.get("function")
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if not isinstance(arguments, str) or not arguments:
        yield chunk(index, {"tool_calls": [{"index": i, **call}]})
        return
    yield chunk(index, {"tool_calls": [{"index": i, **call, "function": {**function, "arguments": ""}}]})
    for at in range(0, len(arguments), ARGUMENT_CHARS_PER_CHUNK):
        piece = arguments[at : at + ARGUMENT_CHARS_PER_CHUNK]
        yield chunk(index, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]})


def replay_chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """A stored chat.completion as the SSE stream a provider would have sent, ending in [DONE]."""
    head = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    for field in ("system_fingerprint", "service_tier"):
        if field in completion:
            head[field] = completion[field]

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return event({**head, "choices": [choice]})

    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message = dict(choice.get("message") or {})
        content = message.pop("content", None)
        tool_calls = message.pop("tool_calls", None)
        role = message.pop("role", "assistant")
        yield chunk(index, {"role": role, "content": "" if isinstance(content, str) else None})
        # Reasoning and other text fields first (as providers stream them), then the answer.
        for key, value in message.items():
            if isinstance(value, str):
                for piece in text_pieces(value):
                    yield chunk(index, {key: piece})
            elif value is not None:
                yield chunk(index, {key: value})
        if isinstance(content, str):
            for piece in text_pieces(content):
                yield chunk(index, {"content": piece})
        for i, call in enumerate(tool_calls or ()):
            yield from _tool_call_chunks(index, i, call, chunk)
        yield chunk(index, {}, choice.get("finish_reason"), choice.get("logprobs"))
    if include_usage and completion.get("usage") is not None:
        yield event({**head, "choices": [], "usage": completion["usage"]})
    yield DONE
