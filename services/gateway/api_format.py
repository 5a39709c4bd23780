"""One API's wire format: what the cache pipeline (`chat.py`) must know to serve it.

The pipeline — exact lookup, semantic lookup, upstream on a miss, store after the response —
is the same for every API. A format says how to parse and key a request, what its answers
look like (cacheable? calls tools? usage?), how to assemble a provider stream into one answer
and replay a stored answer as a stream, and how its errors are shaped.

Entries are kept per format: the format's name is part of every key (exact and semantic
context hash) and is stored with the entry as `api_format`. An answer is only ever served in
the shape the provider produced it in; nothing is converted between APIs.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from starlette.responses import Response

from deja.v1 import common_pb2
from services.gateway.errors import ApiError
from services.gateway.semantic_key import SemanticParts


class CacheableRequest(Protocol):
    raw: bytes  # forwarded upstream byte for byte
    body: dict[str, Any]

    @property
    def model(self) -> str: ...

    @property
    def stream(self) -> bool: ...

    def cache_key(self) -> bytes: ...


class StreamAssembly(Protocol):
    """Feed raw upstream SSE bytes; get back what to forward; `completion()` once `done`."""

    done: bool
    error: Any

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def completion(self) -> dict[str, Any]: ...


def token_count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class ApiFormat(abc.ABC):
    api: str  # "openai" or "anthropic": metrics label and access log
    name: str  # stored as CacheEntry.api_format
    route: str  # the gateway path it serves (access log)
    upstream_path: str  # appended to its upstream's base URL

    @abc.abstractmethod
    def parse(self, raw: bytes, headers: Mapping[str, str]) -> CacheableRequest:
        """Bytes -> validated request, or ApiError(400) naming the field."""

    @abc.abstractmethod
    def api_key(self, headers: Mapping[str, str]) -> str | None:
        """The caller's provider key (the tenant is derived from it), or None."""

    @abc.abstractmethod
    def semantic_parts(self, request: CacheableRequest) -> SemanticParts: ...

    @abc.abstractmethod
    def prompt_of(self, request: CacheableRequest) -> str:
        """The last user turn as text (kept with the entry for listing and invalidation)."""

    @abc.abstractmethod
    def usage(self, answer: dict[str, Any]) -> common_pb2.Usage: ...

    @abc.abstractmethod
    def is_cacheable(self, answer: dict[str, Any]) -> bool:
        """Only complete answers that ended for a normal reason."""

    @abc.abstractmethod
    def calls_tools(self, answer: dict[str, Any]) -> bool: ...

    def upstream_body(self, request: CacheableRequest) -> bytes:
        return request.raw

    @abc.abstractmethod
    def assembler(self, request: CacheableRequest) -> StreamAssembly: ...

    @abc.abstractmethod
    def replay(self, answer: dict[str, Any], request: CacheableRequest) -> Iterator[bytes]:
        """A stored answer as the SSE stream the provider would have sent."""

    @abc.abstractmethod
    def error_response(self, exc: ApiError, headers: dict[str, str] | None = None) -> Response:
        """An error the gateway itself produces, in this API's error shape."""

    @abc.abstractmethod
    def is_error_body(self, parsed: Any) -> bool:
        """Is a provider's error body already in this API's shape (then it is passed through as is)?"""

    @abc.abstractmethod
    def stream_error(self, message: str, code: str) -> bytes:
        """An in-band error event, for when a stream breaks after the headers were sent."""
