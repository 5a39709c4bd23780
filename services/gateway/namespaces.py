"""Deja's own namespaces stay home.

A path under `/v1/cache/` or `/v1/sessions/` that the gateway does not serve would otherwise fall
through to the passthrough route and reach the LLM provider with the caller's key (a typo, a probe,
`..%2F..%2Fetc%2Fpasswd`). Here it gets Deja's own JSON 404 instead, in the Anthropic shape when the
request speaks Anthropic (`anthropic-version`), the OpenAI shape otherwise. `/v1/admin/` has its own
catch-all (cache_api/admin.py), behind the admin key.

Starlette matches the percent-decoded path, so an encoded separator or `..` is still under the prefix.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.anthropic.format import ANTHROPIC
from services.gateway.errors import ApiError

OWN_PREFIXES = ("/v1/cache", "/v1/sessions")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def not_served(request: Request) -> Response:
    exc = ApiError(
        404, f"Deja serves no {request.method} {request.url.path[:200]}", type="not_found_error", code="not_found"
    )
    return ANTHROPIC.error_response(exc) if "anthropic-version" in request.headers else exc.response()


def home_routes() -> list[Route]:
    """Catch-alls for the own prefixes: list them after Deja's real routes, before the passthrough."""
    return [Route(path, not_served, methods=ALL_METHODS) for p in OWN_PREFIXES for path in (p, p + "/{rest:path}")]
