"""The provider behind the cache: one pooled HTTP client, headers passed through faithfully,
transport failures translated into clear OpenAI-style 502/504 errors.

The client is httpx2 (the openai and anthropic SDKs' own transport, the same API as httpx), not
httpx: httpcore 1.0's pool scans every connection on each request, probing each idle socket, and
counts the idle ones again inside that loop, so its cost grows with the square of the connections
open. Under overload, when hundreds of upstream calls are in flight, that scan became most of the
gateway's CPU per miss, misses queued, and the queue opened more connections (`deja bench
--semantic`'s 2x overload, alternating runs: p50 0.2 and 4.0 s with httpx, 75 and 84 ms with
httpx2, whose pool makes a single pass). With a handful of connections the two cost the same.

httpx2 has no OpenTelemetry instrumentation, so the provider call's client span (and the
`traceparent` the provider receives) is made here.
"""

from __future__ import annotations

import httpx2
from opentelemetry import propagate, trace

from services.gateway import observe
from services.gateway.errors import ApiError

_tracer = trace.get_tracer("deja.gateway.upstream")

# Hop-by-hop and framing headers are the proxy's own business, never forwarded either way.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_NOT_UPSTREAM = _HOP | {"accept-encoding", "cache-control"}
_NOT_DOWNSTREAM = _HOP | {"content-encoding", "set-cookie", "date", "server"}


class Upstream:
    def __init__(self, base_url: str, *, timeout_s: float, connect_timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=128),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    @staticmethod
    def request_headers(incoming) -> dict[str, str]:
        return {
            k: v for k, v in incoming.items() if k.lower() not in _NOT_UPSTREAM and not k.lower().startswith("x-deja-")
        }

    @staticmethod
    def response_headers(response: httpx2.Response) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k.lower() not in _NOT_DOWNSTREAM}

    async def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        content: bytes | None,
        *,
        stream: bool,
        params: str = "",
    ) -> httpx2.Response:
        """Send to base_url + path (path is relative to /v1). With stream=True the caller must aclose()."""
        url = f"{self.base_url}{path}" + (f"?{params}" if params else "")
        try:
            with (
                observe.timed("upstream"),  # to the response headers; a stream's body is not counted
                _tracer.start_as_current_span(
                    method, kind=trace.SpanKind.CLIENT, attributes={"http.request.method": method, "url.full": url}
                ) as span,
            ):
                if span.is_recording():
                    headers = {**headers}
                    propagate.inject(headers)  # the provider joins the trace, as with an instrumented client
                request = self._client.build_request(method, url, headers=headers, content=content)
                response = await self._client.send(request, stream=stream)
                span.set_attribute("http.response.status_code", response.status_code)
                return response
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise ApiError(
                502,
                f"upstream {self.base_url} is unreachable: {exc or type(exc).__name__}",
                type="upstream_error",
                code="upstream_unreachable",
            ) from None
        except httpx2.TimeoutException:
            raise ApiError(
                504, f"upstream {self.base_url} timed out", type="upstream_error", code="upstream_timeout"
            ) from None
        except httpx2.HTTPError as exc:
            raise ApiError(
                502,
                f"upstream {self.base_url} failed: {type(exc).__name__}",
                type="upstream_error",
                code="upstream_error",
            ) from None
