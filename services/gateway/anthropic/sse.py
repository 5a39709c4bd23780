"""Server-sent events for Anthropic's Messages API: assemble a provider stream into the message it
describes (what the cache stores), and replay a stored message as the stream the provider sends.

The event sequence is Anthropic's own:

    message_start  (the message with empty content and the input usage)
    content_block_start / ping / content_block_delta* / content_block_stop   per content block
    message_delta  (stop_reason, stop_sequence, output usage)
    message_stop

Deltas: `text_delta` (text), `input_json_delta` (a tool_use block's input as JSON pieces),
`thinking_delta` + `signature_delta` (extended thinking), `citations_delta`. Blocks without a
delta type (redacted_thinking, server tool results) arrive whole in content_block_start.
`assemble(replay(message)) == message`, so streaming and non-streaming clients share an entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from services.gateway.api_format import text_pieces

CACHEABLE_STOP = ("end_turn", "max_tokens", "stop_sequence", "tool_use")  # tuples: an unhashable value is just "not in"
JSON_CHARS_PER_DELTA = 24  # tool input arrives as short JSON fragments
TOOL_INPUT_BLOCKS = ("tool_use", "server_tool_use")


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_event(error_type: str, message: str) -> bytes:
    return sse_event("error", {"type": "error", "error": {"type": error_type, "message": message}})


def is_cacheable(message: dict[str, Any]) -> bool:
    return (
        message.get("type") == "message"
        and message.get("stop_reason") in CACHEABLE_STOP
        and isinstance(message.get("content"), list)
    )


def calls_tools(message: dict[str, Any]) -> bool:
    content = message.get("content") or []
    return message.get("stop_reason") == "tool_use" or any(
        isinstance(block, dict) and block.get("type") in TOOL_INPUT_BLOCKS for block in content
    )


class MessageAssembler:
    """Feed raw SSE bytes as they pass (all forwarded unchanged); `completion()` once `done`."""

    def __init__(self) -> None:
        self._buffer = b""
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, str] = {}
        self.done = False
        self.error: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                self._data(line[5:].strip())
        return data

    def flush(self) -> bytes:
        self._buffer = b""
        return b""

    def _data(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.error = {"type": "api_error", "message": "malformed event from upstream"}
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "error":
            self.error = event.get("error") or {"type": "api_error"}
        elif kind == "message_start" and isinstance(event.get("message"), dict):
            self._message = dict(event["message"])
            self._message["usage"] = dict(self._message.get("usage") or {})
        elif self._message is None:
            if kind != "ping":
                self.error = {"type": "api_error", "message": f"{kind} before message_start"}
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            self._blocks[event.get("index", len(self._blocks))] = dict(event["content_block"])
        elif kind == "content_block_delta":
            self._delta(event.get("index", 0), event.get("delta") or {})
        elif kind == "content_block_stop":
            self._finish_block(event.get("index", 0))
        elif kind == "message_delta":
            self._message.update(event.get("delta") or {})
            # Usage on message_delta is cumulative: it overwrites what message_start said.
            self._message["usage"].update(event.get("usage") or {})
        elif kind == "message_stop":
            self.done = True

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
        elif kind == "input_json_delta":
            self._json[index] = self._json.get(index, "") + delta.get("partial_json", "")
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature", "")
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))

    def _finish_block(self, index: int) -> None:
        if index in self._json:
            text = self._json.pop(index)
            try:
                self._blocks.setdefault(index, {})["input"] = orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                self.error = {"type": "api_error", "message": "malformed tool input from upstream"}

    def completion(self) -> dict[str, Any]:
        message = dict(self._message or {})
        message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        return message


def _block_events(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block.get("type")

    def delta(payload: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": payload})

    def start(content_block: dict[str, Any]) -> bytes:
        payload = {"type": "content_block_start", "index": index, "content_block": content_block}
        return sse_event("content_block_start", payload)

    if kind == "text" and isinstance(block.get("text"), str):
        yield start({**block, "text": ""})
        for piece in text_pieces(block["text"]):
            yield delta({"type": "text_delta", "text": piece})
    elif kind in TOOL_INPUT_BLOCKS and isinstance(block.get("input"), dict):
        yield start({**block, "input": {}})
        text = orjson.dumps(block["input"]).decode()
        for at in range(0, len(text), JSON_CHARS_PER_DELTA):
            yield delta({"type": "input_json_delta", "partial_json": text[at : at + JSON_CHARS_PER_DELTA]})
    elif kind == "thinking" and isinstance(block.get("thinking"), str):
        yield start({**block, "thinking": "", **({"signature": ""} if "signature" in block else {})})
        for piece in text_pieces(block["thinking"]):
            yield delta({"type": "thinking_delta", "thinking": piece})
        if "signature" in block:
            yield delta({"type": "signature_delta", "signature": block["signature"]})
    else:  # redacted thinking, server tool results, anything newer: whole, as the API sends them
        yield start(block)
    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": index})


def replay_events(message: dict[str, Any]) -> Iterator[bytes]:
    """A stored message as Anthropic's SSE stream, ending with message_stop."""
    usage = dict(message.get("usage") or {})
    head = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence", "usage")}
    start_usage = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0) or 0)}
    yield sse_event(
        "message_start",
        {
            "type": "message_start",
            "message": {**head, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage},
        },
    )
    for index, block in enumerate(message.get("content") or ()):
        for i, chunk in enumerate(_block_events(index, block)):
            yield chunk
            if index == 0 and i == 0:
                yield sse_event("ping", {"type": "ping"})  # where the API sends its first keep-alive
    final = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    delta_usage = {k: v for k, v in usage.items() if k != "input_tokens"} or {"output_tokens": 0}
    yield sse_event("message_delta", {"type": "message_delta", "delta": final, "usage": delta_usage})
    yield sse_event("message_stop", {"type": "message_stop"})
