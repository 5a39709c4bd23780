"""The provider behind the cache: one pooled httpx client, headers passed through faithfully,
transport failures translated into clear OpenAI-style 502/504 errors."""

from __future__ import annotations

import httpx

from services.gateway import observe
from services.gateway.errors import ApiError

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
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
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
    def response_headers(response: httpx.Response) -> dict[str, str]:
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
    ) -> httpx.Response:
        """Send to base_url + path (path is relative to /v1). With stream=True the caller must aclose()."""
        url = f"{self.base_url}{path}" + (f"?{params}" if params else "")
        request = self._client.build_request(method, url, headers=headers, content=content)
        try:
            with observe.timed("upstream"):  # to the response headers; a stream's body is not counted
                return await self._client.send(request, stream=stream)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ApiError(
                502,
                f"upstream {self.base_url} is unreachable: {exc or type(exc).__name__}",
                type="upstream_error",
                code="upstream_unreachable",
            ) from None
        except httpx.TimeoutException:
            raise ApiError(
                504, f"upstream {self.base_url} timed out", type="upstream_error", code="upstream_timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                502,
                f"upstream {self.base_url} failed: {type(exc).__name__}",
                type="upstream_error",
                code="upstream_error",
            ) from None
