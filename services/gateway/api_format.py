"""One API's wire format: what the cache pipeline (`pipeline.py`) must know to serve it, and what
both formats share (the tenant-keyed entry id, message text, the chunking of replayed text).

Each API's own side lives in its folder: `openai/` and `anthropic/` (request parsing and key,
SSE assembly and replay, the ApiFormat adapter, its piece of session memory).

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
import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import blake3
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


def entry_key(tenant: str, request_key: bytes) -> bytes:
    """The entry id of a request in a tenant's cache: blake3 of the request's key, keyed with the tenant
    id (32 bytes). Two tenants never share an id (an id seen by one says nothing about the other's
    cache), and the same request keeps its id across restarts."""
    return blake3.blake3(request_key, key=bytes.fromhex(tenant)).digest()


_PIECE = re.compile(r"\s*\S+|\s+$")
WORDS_PER_CHUNK = 3  # roughly the 3-5 tokens a provider sends per delta


def text_pieces(text: str) -> Iterator[str]:
    """Text as a replayed stream sends it: a few words per event, whitespace kept."""
    pieces = _PIECE.findall(text)
    for start in range(0, len(pieces), WORDS_PER_CHUNK):
        yield "".join(pieces[start : start + WORDS_PER_CHUNK])


def message_text(content: Any) -> str | None:
    """Message content as text: a string, or the text parts of a list of parts (others skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        texts = [p for p in parts if isinstance(p, str)]
        return "\n".join(texts) if texts else None
    return None


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
    def answer_text(self, answer: dict[str, Any]) -> str | None:
        """The answer's text as session memory keeps it (None: nothing to remember, e.g. tool calls only)."""

    @abc.abstractmethod
    def with_history(self, request: CacheableRequest, history: list[dict[str, str]]) -> CacheableRequest:
        """The request with recalled user/assistant turns put in front of its conversation."""

    @abc.abstractmethod
    def error_response(self, exc: ApiError, headers: dict[str, str] | None = None) -> Response:
        """An error the gateway itself produces, in this API's error shape."""

    @abc.abstractmethod
    def is_error_body(self, parsed: Any) -> bool:
        """Is a provider's error body already in this API's shape (then it is passed through as is)?"""

    @abc.abstractmethod
    def stream_error(self, message: str, code: str) -> bytes:
        """An in-band error event, for when a stream breaks after the headers were sent."""
