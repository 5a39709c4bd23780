"""`X-Deja-Format: tauq`: the JSON inside an answer, re-written in Tauq notation for this client.

Only the response the client gets changes; the request sent upstream and the entry that is cached
are the provider's bytes, so the same entry serves clients with and without the header.

    OpenAI     choices[].message.tool_calls[].function.arguments (a JSON string) -> Tauq text
               (and the legacy message.function_call.arguments); message.content that is a whole
               JSON object or array, bare or as one ```json fenced block -> Tauq (a fence stays a
               fence, marked ```tauq)
    Anthropic  text blocks that are a whole JSON document, the same way. tool_use blocks keep their
               `input` object: SDKs type it as an object, and it is sent back as one in the next
               turn, so a Tauq string there would break the tool loop.

Prose, JSON scalars, and text that does not parse (or nests deeper than Tauq's limit) stay as
they are. When something was converted the response says `x-deja-format: tauq`. A streamed
request with the header is refused (400 format_unsupported_for_stream) before anything is
looked up or sent upstream: its JSON arrives in fragments, so there is no whole document to
convert, and a stream silently left as JSON would look like support.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from deja.formats import tauq
from deja.logs import get_logger
from services.gateway.api_format import CacheableRequest
from services.gateway.errors import ApiError

log = get_logger("deja.gateway")

FORMAT = "tauq"
_FENCED = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)


def requested(headers: Mapping[str, str]) -> bool:
    """Did the client ask for Tauq? (cache_control_from has already refused any other value.)"""
    return (headers.get("x-deja-format") or "").strip().lower() == FORMAT


def refuse_stream(headers: Mapping[str, str], chat: CacheableRequest) -> None:
    if chat.stream and requested(headers):
        raise ApiError(
            400,
            "X-Deja-Format: tauq converts whole answers and cannot apply to a stream; send the request "
            "with stream false, or without the header",
            param="X-Deja-Format",
            code="format_unsupported_for_stream",
        )


def tauq_text(text: str) -> str | None:
    """`text` as Tauq when it is one JSON object or array (bare or in one ```json fence), else None."""
    stripped = text.strip()
    fenced = _FENCED.fullmatch(stripped)
    document = fenced.group(1) if fenced else stripped
    if not document.startswith(("{", "[")):
        return None
    try:
        compact = tauq.dumps(orjson.loads(document))
    except (orjson.JSONDecodeError, ValueError, TypeError):  # not JSON, or deeper than Tauq's limit
        return None
    return f"```tauq\n{compact}\n```" if fenced else compact


def _convert_field(holder: Any, field: str) -> bool:
    """Replace holder[field] by its Tauq form when it is a JSON document; True if it was."""
    if not isinstance(holder, dict) or not isinstance(holder.get(field), str):
        return False
    compact = tauq_text(holder[field])
    if compact is None:
        return False
    holder[field] = compact
    return True


def _compact_openai(answer: dict[str, Any]) -> bool:
    converted = False
    for choice in answer.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                converted |= _convert_field(call.get("function"), "arguments")
        converted |= _convert_field(message.get("function_call"), "arguments")
        converted |= _convert_field(message, "content")
    return converted


def _compact_anthropic(answer: dict[str, Any]) -> bool:
    converted = False
    for block in answer.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text":
            converted |= _convert_field(block, "text")
    return converted


_BY_API = {"openai": _compact_openai, "anthropic": _compact_anthropic}


def compact(response: Response, headers: Mapping[str, str], api: str) -> Response:
    """The response to send: `response` itself, or with its JSON parts in Tauq when the client asked.
    Fails open: anything unexpected leaves the provider's answer as it was."""
    if not requested(headers) or isinstance(response, StreamingResponse) or response.status_code != 200:
        return response
    try:
        answer = orjson.loads(response.body)
        if not isinstance(answer, dict) or not _BY_API[api](answer):
            return response
        body = orjson.dumps(answer)
    except Exception as exc:  # a bug here must not cost the client its answer
        log.warning("compact_answer_failed_open", error=type(exc).__name__)
        return response
    response.body = body
    response.headers["content-length"] = str(len(body))
    response.headers["x-deja-format"] = FORMAT
    return response
