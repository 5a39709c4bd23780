"""What the client allows the cache to do for one request, from its headers."""

from __future__ import annotations

import enum

import blake3


class Policy(enum.Enum):
    NORMAL = "miss"  # read, and write on a miss (value = the outcome when nothing was found)
    REFRESH = "refresh"  # Cache-Control: no-cache -> skip the read, store the fresh answer
    BYPASS = "bypass"  # Cache-Control: no-store (or no API key) -> neither read nor write


def policy_from(cache_control: str | None) -> Policy:
    if not cache_control:
        return Policy.NORMAL
    directives = {part.strip().split("=", 1)[0].lower() for part in cache_control.split(",")}
    if "no-store" in directives:
        return Policy.BYPASS
    if "no-cache" in directives:
        return Policy.REFRESH
    return Policy.NORMAL


def api_key_from(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def caller_api_key(headers) -> str | None:
    """The key of a request to the gateway's own endpoints (stats, sessions, self-service): an
    Anthropic-style `x-api-key` or a bearer token, so one key is one tenant whichever SDK sends it."""
    return (headers.get("x-api-key") or "").strip() or api_key_from(headers.get("authorization"))


def tenant_of(api_key: str) -> str:
    """The tenant id: blake3 of the API key. The raw key is never stored or logged."""
    return blake3.blake3(api_key.encode()).hexdigest()


def entry_key(tenant: str, request_key: bytes) -> bytes:
    """The entry id of a request in a tenant's cache: blake3 of the request's key, keyed with the tenant
    id (32 bytes). Two tenants never share an id (an id seen by one says nothing about the other's
    cache), and the same request keeps its id across restarts."""
    return blake3.blake3(request_key, key=bytes.fromhex(tenant)).digest()
