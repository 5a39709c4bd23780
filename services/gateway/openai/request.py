"""Parsing, validation and the exact-cache key of an OpenAI chat completion request.

The key is blake3 over a canonical form of the request. What is in it: every field of the
body — model, messages, tools, tool_choice, response_format and all sampling parameters
(temperature, top_p, n, max_tokens, max_completion_tokens, stop, seed, penalties, logit_bias,
logprobs, reasoning_effort, ...) — EXCEPT the fields that cannot change the answer:

    stream, stream_options, user, metadata, store, service_tier,
    safety_identifier, prompt_cache_key, prompt_cache_retention

Everything unknown goes into the key: a new provider parameter can only cost a hit, never
serve a wrong answer. Canonical form = JSON with sorted keys and no whitespace; numeric
sampling parameters are normalised to floats so `temperature: 1` and `1.0` share an entry.
The key is prefixed with a schema version and the API format, so formats never collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import blake3
import orjson

from services.gateway.errors import ApiError
from services.gateway.semantic_key import SemanticParts, parts_of

API_FORMAT = "openai.chat.completions"
KEY_SCHEMA = b"deja.key.v1|" + API_FORMAT.encode() + b"|"

NOT_IN_KEY = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    }
)
FLOAT_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
INT_PARAMS = ("n", "max_tokens", "max_completion_tokens", "seed", "top_logprobs")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"'{where}' must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or dict is not even hashable
            raise _bad(f"'{where}.role' must be one of {sorted(ROLES)}", f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"'{where}.content' must be a string, an array of parts or null", f"{where}.content")


def _check_types(body: dict[str, Any]) -> None:
    for name in FLOAT_PARAMS:
        if body.get(name) is not None and not _is_number(body[name]):
            raise _bad(f"'{name}' must be a number", name)
    for name in INT_PARAMS:
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise _bad(f"'{name}' must be an integer", name)
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise _bad("'stream' must be a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("'stream_options' must be an object", "stream_options")
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise _bad("'stop' must be a string or an array of strings", "stop")
    for name in ("tools", "functions"):
        if body.get(name) is not None and not isinstance(body[name], list):
            raise _bad(f"'{name}' must be an array", name)


@dataclass(frozen=True)
class ChatRequest:
    raw: bytes  # forwarded upstream byte for byte
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options") or {}
        return bool(options.get("include_usage"))

    def canonical(self) -> bytes:
        keyed = {k: v for k, v in self.body.items() if k not in NOT_IN_KEY}
        for name in FLOAT_PARAMS:
            if _is_number(keyed.get(name)):
                keyed[name] = float(keyed[name])
        return orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)

    def cache_key(self) -> bytes:
        return blake3.blake3(KEY_SCHEMA + self.canonical()).digest()


def semantic_parts(chat: ChatRequest) -> SemanticParts:
    """What the semantic tier compares, from the body as the exact key sees it."""
    return parts_of({k: v for k, v in chat.body.items() if k not in NOT_IN_KEY}, KEY_SCHEMA)


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Bytes -> validated request, or ApiError(400) saying exactly what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a non-empty string", "model")
    _check_messages(body.get("messages"))
    _check_types(body)
    return ChatRequest(raw=raw, body=body)
