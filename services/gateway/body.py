"""Reading a request body, once: under a size limit (413 as soon as it is known to be over), then
JSON, then — on the chat routes — the API format's validated request object.

Every handler that takes a body reads it here, so the limit and the errors are the same everywhere.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from services.gateway.api_format import ApiFormat, CacheableRequest
from services.gateway.errors import ApiError


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed `limit` (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_request(request: Request, fmt: ApiFormat, limit: int) -> CacheableRequest:
    """A chat route's body, read and parsed into `fmt`'s request (ApiError 400/413 naming the problem)."""
    return fmt.parse(await read_body(request, limit), request.headers)


async def read_json_object(request: Request, limit: int = 64 * 1024) -> dict[str, Any]:
    """A small JSON object body (an empty body is `{}`), for Deja's own endpoints."""
    raw = await read_body(request, limit)
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return body
