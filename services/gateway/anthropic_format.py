"""Anthropic Messages (`POST /v1/messages`) as an ApiFormat.

Requests go to `DEJA_ANTHROPIC_UPSTREAM_URL` + `/v1/messages` with the client's `x-api-key`,
`anthropic-version` and `anthropic-beta` passed through; the tenant is blake3 of `x-api-key`
(or of a bearer token, for clients that authenticate that way), so one key is one tenant in
both APIs.

**One entry per API format.** An Anthropic answer is stored as the Messages JSON the provider
sent (a stream is assembled into that JSON) and is only ever served to Messages requests, in
Anthropic's shape (JSON, or Anthropic's SSE event sequence for a streaming client). It is never
converted into a chat completion or back: the two APIs differ in stop reasons, tool-call ids,
thinking blocks and usage fields, and a faithful conversion in both directions is not possible
in general. The key schema names the format, so the two never share an exact key or a semantic
context.

**The key** is blake3 over the canonical body (sorted keys; `temperature`/`top_p` as floats)
without `stream`, `metadata` and `service_tier`, plus the `anthropic-version` and
`anthropic-beta` headers (a beta can change the answer). `system`, `tools`, `tool_choice`,
`thinking`, `max_tokens`, `stop_sequences`, `top_k` and every unknown field are in it.

Errors the gateway produces on this route use Anthropic's shape:
`{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import blake3
import orjson
from starlette.responses import Response

from deja.v1 import common_pb2
from services.gateway.anthropic_sse import MessageAssembler, calls_tools, error_event, is_cacheable, replay_events
from services.gateway.api_format import ApiFormat, token_count
from services.gateway.cache_policy import caller_api_key
from services.gateway.errors import ApiError
from services.gateway.semantic_key import SemanticParts, last_user_text, parts_of

API_FORMAT = "anthropic.messages"
KEY_SCHEMA = b"deja.key.v1|" + API_FORMAT.encode() + b"|"
NOT_IN_KEY = frozenset({"stream", "metadata", "service_tier"})
KEYED_HEADERS = ("anthropic-version", "anthropic-beta")
FLOAT_PARAMS = ("temperature", "top_p")
ROLES = frozenset({"user", "assistant"})

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type_for(status), "message": message}})


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


class AnthropicMessages(ApiFormat):
    api = "anthropic"
    name = API_FORMAT
    route = "/v1/messages"
    upstream_path = "/v1/messages"

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> MessagesRequest:
        return parse_messages_request(raw, headers)

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        return caller_api_key(headers)

    def semantic_parts(self, request: MessagesRequest) -> SemanticParts:
        return parts_of(request.keyed(), KEY_SCHEMA)

    def prompt_of(self, request: MessagesRequest) -> str:
        return last_user_text(request.body["messages"]) or ""

    def usage(self, answer: dict[str, Any]) -> common_pb2.Usage:
        usage = answer.get("usage") or {}
        prompt = sum(
            token_count(usage, name)
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        completion = token_count(usage, "output_tokens")
        return common_pb2.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def is_cacheable(self, answer: dict[str, Any]) -> bool:
        return is_cacheable(answer)

    def calls_tools(self, answer: dict[str, Any]) -> bool:
        return calls_tools(answer)

    def assembler(self, request: MessagesRequest) -> MessageAssembler:
        return MessageAssembler()

    def replay(self, answer: dict[str, Any], request: MessagesRequest) -> Iterator[bytes]:
        return replay_events(answer)

    def error_response(self, exc: ApiError, headers: dict[str, str] | None = None) -> Response:
        body = anthropic_error_body(exc.status, exc.message)
        return Response(body, status_code=exc.status, media_type="application/json", headers=headers)

    def is_error_body(self, parsed: Any) -> bool:
        return isinstance(parsed, dict) and parsed.get("type") == "error" and isinstance(parsed.get("error"), dict)

    def stream_error(self, message: str, code: str) -> bytes:
        return error_event("api_error", f"{message} ({code})")


ANTHROPIC = AnthropicMessages()
