"""Parsing, validation and the keys of an Anthropic Messages request (`POST /v1/messages`).

**The key** is blake3 over the canonical body (sorted keys; `temperature`/`top_p` as floats)
without `stream`, `metadata` and `service_tier`, plus the `anthropic-version` and
`anthropic-beta` headers (a beta can change the answer). `system`, `tools`, `tool_choice`,
`thinking`, `max_tokens`, `stop_sequences`, `top_k` and every unknown field are in it. The key
schema names the format, so the two APIs never share an exact key or a semantic context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import blake3
import orjson

from services.gateway.errors import ApiError
from services.gateway.semantic_key import SemanticParts, parts_of

API_FORMAT = "anthropic.messages"
KEY_SCHEMA = b"deja.key.v1|" + API_FORMAT.encode() + b"|"
NOT_IN_KEY = frozenset({"stream", "metadata", "service_tier"})
KEYED_HEADERS = ("anthropic-version", "anthropic-beta")
FLOAT_PARAMS = ("temperature", "top_p")
ROLES = frozenset({"user", "assistant"})


def _bad(message: str) -> ApiError:
    return ApiError(400, message, code="invalid_value")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages.{i}: must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or dict is not even hashable
            raise _bad(f"messages.{i}.role: must be one of {sorted(ROLES)}")
        content = message.get("content")
        if isinstance(content, list):
            if not all(isinstance(block, dict) and isinstance(block.get("type"), str) for block in content):
                raise _bad(f"messages.{i}.content: every block must be an object with a type")
        elif not isinstance(content, str):
            raise _bad(f"messages.{i}.content: must be a string or an array of content blocks")


def _check_fields(body: dict[str, Any]) -> None:
    max_tokens = body.get("max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise _bad("max_tokens: is required and must be a positive integer")
    for name in FLOAT_PARAMS:
        if body.get(name) is not None and not _is_number(body[name]):
            raise _bad(f"{name}: must be a number")
    if body.get("top_k") is not None and not _is_int(body["top_k"]):
        raise _bad("top_k: must be an integer")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _bad("stream: must be a boolean")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise _bad("system: must be a string or an array of text blocks")
    stop = body.get("stop_sequences")
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise _bad("stop_sequences: must be an array of strings")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise _bad("tools: must be an array")
    for name in ("tool_choice", "metadata", "thinking"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise _bad(f"{name}: must be an object")


@dataclass(frozen=True)
class MessagesRequest:
    raw: bytes
    body: dict[str, Any]
    keyed_headers: tuple[tuple[str, str], ...] = ()

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def keyed(self) -> dict[str, Any]:
        """The body as the keys see it (header names cannot collide with body fields: they have hyphens)."""
        keyed = {k: v for k, v in self.body.items() if k not in NOT_IN_KEY}
        for name in FLOAT_PARAMS:
            if _is_number(keyed.get(name)):
                keyed[name] = float(keyed[name])
        keyed.update(self.keyed_headers)
        return keyed

    def cache_key(self) -> bytes:
        return blake3.blake3(KEY_SCHEMA + orjson.dumps(self.keyed(), option=orjson.OPT_SORT_KEYS)).digest()


def parse_messages_request(raw: bytes, headers: Mapping[str, str]) -> MessagesRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _bad("model: is required and must be a non-empty string")
    _check_messages(body.get("messages"))
    _check_fields(body)
    keyed = tuple((name, headers[name].strip()) for name in KEYED_HEADERS if headers.get(name))
    return MessagesRequest(raw=raw, body=body, keyed_headers=keyed)


def semantic_parts(request: MessagesRequest) -> SemanticParts:
    """What the semantic tier compares, from the body as the exact key sees it."""
    return parts_of(request.keyed(), KEY_SCHEMA)
