"""Who is calling: API key -> tenant, and the operator's admin key. The only place keys are read.

A tenant is blake3 of the caller's provider key, so the raw key is never stored or logged and one
key is one tenant in every API. Where a key is read from depends on the door:

- OpenAI chat completions: `Authorization: Bearer` only (what the OpenAI SDK sends);
- Anthropic Messages and Deja's own endpoints (stats, sessions, the tenant's cache): an
  Anthropic-style `x-api-key` or a bearer token, whichever SDK sends it;
- the admin API: the operator's key (DEJA_ADMIN_KEY) as a bearer token or `X-Deja-Admin-Key`,
  compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import blake3

from services.gateway.errors import ApiError


def api_key_from(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def caller_api_key(headers: Mapping[str, str]) -> str | None:
    """An `x-api-key` or a bearer token: one key is one tenant whichever SDK sends it."""
    return (headers.get("x-api-key") or "").strip() or api_key_from(headers.get("authorization"))


def tenant_of(api_key: str) -> str:
    """The tenant id: blake3 of the API key. The raw key is never stored or logged."""
    return blake3.blake3(api_key.encode()).hexdigest()


def caller_tenant(headers: Mapping[str, str]) -> str:
    """The caller's tenant on Deja's own endpoints, or 401 in the provider's error shape."""
    api_key = caller_api_key(headers)
    if not api_key:
        raise ApiError(401, "an API key is required (Authorization: Bearer ... or x-api-key)",
                       type="invalid_request_error", code="missing_api_key")  # fmt: skip
    return tenant_of(api_key)


def require_admin(headers: Mapping[str, str], admin_key: str) -> None:
    """404 while the admin API is off (no DEJA_ADMIN_KEY), 401 without a key, 403 with a wrong one."""
    if not admin_key:
        raise ApiError(404, "the admin API is off: set DEJA_ADMIN_KEY to turn it on", type="not_found_error",
                       code="admin_api_disabled")  # fmt: skip
    given = api_key_from(headers.get("authorization")) or headers.get("x-deja-admin-key", "")
    if not given:
        raise ApiError(401, "the admin API needs the admin key (Authorization: Bearer ...)",
                       type="authentication_error", code="missing_admin_key")  # fmt: skip
    if not hmac.compare_digest(given.encode(), admin_key.encode()):
        raise ApiError(403, "this key is not the admin key", type="permission_error", code="invalid_admin_key")
