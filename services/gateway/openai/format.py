"""OpenAI chat completions (`POST /v1/chat/completions`) as an ApiFormat.

Parsing and the keys live in `request`, the SSE assembler and replay in `sse`, session memory's
piece in `memory`; this module
binds them to the pipeline. One difference from a plain proxy: a streaming request is sent
upstream with `stream_options.include_usage` set, so every entry can be priced; the assembler
hides that usage chunk from a client that did not ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from deja.v1 import common_pb2
from services.gateway.api_format import ApiFormat, token_count
from services.gateway.errors import ApiError, error_body
from services.gateway.identity import api_key_from
from services.gateway.openai import memory
from services.gateway.openai.request import API_FORMAT, ChatRequest, parse_chat_request, semantic_parts
from services.gateway.openai.sse import StreamAssembler, calls_tools, event, is_cacheable, replay_chunks
from services.gateway.semantic_key import SemanticParts, last_user_text


class OpenAIChat(ApiFormat):
    api = "openai"
    name = API_FORMAT
    route = "/v1/chat/completions"
    upstream_path = "/chat/completions"

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return parse_chat_request(raw)

    def api_key(self, headers: Mapping[str, str]) -> str | None:
        return api_key_from(headers.get("authorization"))

    def semantic_parts(self, request: ChatRequest) -> SemanticParts:
        return semantic_parts(request)

    def prompt_of(self, request: ChatRequest) -> str:
        return last_user_text(request.body["messages"]) or ""

    def usage(self, answer: dict[str, Any]) -> common_pb2.Usage:
        usage = answer.get("usage") or {}
        return common_pb2.Usage(
            prompt_tokens=token_count(usage, "prompt_tokens"),
            completion_tokens=token_count(usage, "completion_tokens"),
            total_tokens=token_count(usage, "total_tokens"),
        )

    def is_cacheable(self, answer: dict[str, Any]) -> bool:
        return is_cacheable(answer)

    def calls_tools(self, answer: dict[str, Any]) -> bool:
        return calls_tools(answer)

    def upstream_body(self, request: ChatRequest) -> bytes:
        if not request.stream or request.include_usage:
            return request.raw
        # Ask for usage anyway so the entry can be priced; the assembler hides it from this client.
        options = {**(request.body.get("stream_options") or {}), "include_usage": True}
        return orjson.dumps({**request.body, "stream_options": options})

    def assembler(self, request: ChatRequest) -> StreamAssembler:
        return StreamAssembler(hide_usage=not request.include_usage)

    def replay(self, answer: dict[str, Any], request: ChatRequest) -> Iterator[bytes]:
        return replay_chunks(answer, request.include_usage)

    def answer_text(self, answer: dict[str, Any]) -> str | None:
        return memory.answer_text(answer)

    def with_history(self, request: ChatRequest, history: list[dict[str, str]]) -> ChatRequest:
        return memory.with_history(request, history)

    def error_response(self, exc: ApiError, headers: dict[str, str] | None = None) -> Response:
        return exc.response(headers)

    def is_error_body(self, parsed: Any) -> bool:
        return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict | str)

    def stream_error(self, message: str, code: str) -> bytes:
        return event({"error": orjson.loads(error_body(message, type="upstream_error", code=code))["error"]})


OPENAI = OpenAIChat()
