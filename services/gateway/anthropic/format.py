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

Parsing and the keys live in `request`, the SSE assembler and replay in `sse`, session memory's
piece in `memory`; this module binds them to the pipeline.

Errors the gateway produces on this route use Anthropic's shape:
`{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from deja.v1 import common_pb2
from services.gateway.anthropic import memory
from services.gateway.anthropic.request import API_FORMAT, MessagesRequest, parse_messages_request, semantic_parts
from services.gateway.anthropic.sse import MessageAssembler, calls_tools, error_event, is_cacheable, replay_events
from services.gateway.api_format import ApiFormat, token_count
from services.gateway.errors import ApiError
from services.gateway.identity import caller_api_key
from services.gateway.semantic_key import SemanticParts, last_user_text

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
        return semantic_parts(request)

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

    def answer_text(self, answer: dict[str, Any]) -> str | None:
        return memory.answer_text(answer)

    def with_history(self, request: MessagesRequest, history: list[dict[str, str]]) -> MessagesRequest:
        return memory.with_history(request, history)

    def error_response(self, exc: ApiError, headers: dict[str, str] | None = None) -> Response:
        body = anthropic_error_body(exc.status, exc.message)
        return Response(body, status_code=exc.status, media_type="application/json", headers=headers)

    def is_error_body(self, parsed: Any) -> bool:
        return isinstance(parsed, dict) and parsed.get("type") == "error" and isinstance(parsed.get("error"), dict)

    def stream_error(self, message: str, code: str) -> bytes:
        return error_event("api_error", f"{message} ({code})")


ANTHROPIC = AnthropicMessages()
