"""Every other `/v1` endpoint (models, embeddings, count_tokens, ...) goes to the provider untouched and
uncached: Anthropic's (a request with `anthropic-version`, or under /v1/messages/) or the OpenAI one.
Listed last: Deja's own paths (and their catch-alls, namespaces.py) come first."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services.gateway import observe
from services.gateway.anthropic.format import ANTHROPIC
from services.gateway.body import read_body
from services.gateway.errors import ApiError
from services.gateway.openai.format import OPENAI
from services.gateway.tiers import Tiers


def passthrough_routes(tiers: Callable[[], Tiers], max_body_bytes: int) -> list[Route]:
    async def passthrough(request: Request) -> Response:
        # Re-encoded: the route hands over the decoded path, and "%1F" must not reach the upstream as a raw byte.
        path = urllib.parse.quote(request.path_params["path"], safe="/:@!$&'()*+,;=~")
        anthropic = "anthropic-version" in request.headers or path.startswith("messages/")
        upstream = tiers().upstreams[(ANTHROPIC if anthropic else OPENAI).api]
        try:
            body = await read_body(request, max_body_bytes)
            response = await upstream.send(
                request.method,
                ("/v1/" if anthropic else "/") + path,
                upstream.request_headers(request.headers),
                body or None,
                stream=True,
                params=request.url.query,
            )
        except ApiError as exc:
            return ANTHROPIC.error_response(exc) if anthropic else exc.response()

        async def relay():
            try:
                async for data in response.aiter_raw():
                    yield data
            finally:
                await response.aclose()

        headers = {**upstream.response_headers(response), "x-deja-cache": "bypass"}
        observe.note_cache("bypass")
        return StreamingResponse(relay(), status_code=response.status_code, headers=headers)

    return [Route("/v1/{path:path}", passthrough, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
