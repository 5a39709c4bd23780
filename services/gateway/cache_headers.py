"""What the client allows the cache to do for one request, from its request headers: the
request's cache policy (read and write, refresh, bypass) and the rest of its cache control.

    Cache-Control: no-store        neither read nor write (also: no API key)
    Cache-Control: no-cache        skip the read, store the fresh answer
    Cache-Control: max-age=N       serve only answers at most N s old; store the answer for N s
                                   (max-age=0: nothing is fresh enough and nothing is kept = no-store)
    X-Deja-TTL: N                  store the answer for N s (wins over max-age for the TTL)
    X-Deja-Namespace: name         a partition inside the tenant, in both tiers
    X-Deja-Semantic: off|on        off: exact tier only (no semantic read, no indexing)
    X-Deja-Threshold: p            verifier threshold for this request; only ever raises the
                                   configured one (a lower value is ignored, never loosens it)
    X-Deja-Max-Error: r            error budget for this request (a rate in [0, 1]); only ever tightens
                                   DEJA_MAX_ERROR_RATE
    X-Deja-Judge: off              no judge call for this request: the uncertain band is a miss
    X-Deja-Format: tauq            JSON in the answer (tool-call arguments, JSON content) comes back in
                                   Tauq notation; the cached entry is unchanged (see compact_answers)

TTLs are capped by the store (DEJA_CACHE_MAX_TTL_S) and never exceed the short TTL the policy
gives time-sensitive prompts. A malformed value is a 400 naming the header, never ignored:
a client that asked for a TTL or a partition must not silently get another.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from deja.ids import NAMESPACE_RULE, is_valid_namespace
from services.gateway.errors import ApiError

MAX_SECONDS = 10 * 365 * 86_400  # anything longer is capped by the store anyway


class Policy(enum.Enum):
    NORMAL = "miss"  # read, and write on a miss (value = the outcome when nothing was found)
    REFRESH = "refresh"  # Cache-Control: no-cache -> skip the read, store the fresh answer
    BYPASS = "bypass"  # Cache-Control: no-store, max-age=0 (or no API key) -> neither read nor write


def _bad(header: str, message: str) -> ApiError:
    return ApiError(400, f"{header}: {message}", param=header, code="invalid_header")


def _seconds(header: str, raw: str, *, minimum: int) -> int:
    text = raw.strip().strip('"')
    if not text.isdigit() or not text.isascii():
        raise _bad(header, f"expected a whole number of seconds, got {raw!r}")
    value = int(text)
    if value < minimum:
        raise _bad(header, f"must be at least {minimum}")
    return min(value, MAX_SECONDS)


@dataclass(frozen=True)
class CacheControl:
    policy: Policy = Policy.NORMAL
    ttl_s: int = 0  # 0: the default (the store's, or the policy's for time-sensitive prompts)
    max_age_s: int | None = None  # hits older than this are not served
    namespace: str = ""
    semantic: bool = True
    threshold: float | None = None  # as asked; SemanticTier takes the stricter of it and the configured one
    max_error: float | None = None  # as asked; the stricter of it and DEJA_MAX_ERROR_RATE applies
    judge: bool = True  # False: the client turned the judge off for this request

    def ttl_with(self, policy_ttl_s: int) -> int:
        """The entry's TTL: the request's, but never longer than the policy's short TTL."""
        if self.ttl_s and policy_ttl_s:
            return min(self.ttl_s, policy_ttl_s)
        return self.ttl_s or policy_ttl_s

    def fresh(self, age_s: int) -> bool:
        return self.max_age_s is None or age_s <= self.max_age_s


def _directives(raw: str | None) -> dict[str, str | None]:
    directives: dict[str, str | None] = {}
    for part in (raw or "").split(","):
        name, eq, value = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = value if eq else None
    return directives


def max_age_from(cache_control: str | None) -> int | None:
    """Cache-Control's max-age in seconds, None when absent; 400 when it has no valid value."""
    directives = _directives(cache_control)
    if "max-age" not in directives:
        return None
    if directives["max-age"] is None:
        raise _bad("Cache-Control", "max-age needs a value (max-age=N)")
    return _seconds("Cache-Control", directives["max-age"], minimum=0)


def policy_from(cache_control: str | None) -> Policy:
    """no-store (or max-age=0: nothing is fresh enough, nothing is kept) bypasses; no-cache refreshes."""
    max_age = max_age_from(cache_control)  # a malformed max-age is a 400 whatever else is there
    directives = _directives(cache_control)
    if "no-store" in directives or max_age == 0:
        return Policy.BYPASS
    if "no-cache" in directives:
        return Policy.REFRESH
    return Policy.NORMAL


def cache_control_from(headers: Mapping[str, str]) -> CacheControl:
    """Parse and check every cache header of a request; ApiError(400) on a bad one."""
    compact = headers.get("x-deja-format")
    if compact is not None and compact.strip().lower() != "tauq":
        raise _bad("X-Deja-Format", f"unknown format {compact!r} (the only one defined is tauq)")
    policy = policy_from(headers.get("cache-control"))
    max_age = None if policy is Policy.BYPASS else max_age_from(headers.get("cache-control"))
    ttl = max_age or 0
    if headers.get("x-deja-ttl") is not None:
        ttl = _seconds("X-Deja-TTL", headers["x-deja-ttl"], minimum=1)
    namespace = (headers.get("x-deja-namespace") or "").strip()
    if namespace and not is_valid_namespace(namespace):
        raise _bad("X-Deja-Namespace", f"must be {NAMESPACE_RULE}")
    semantic = _on_off(headers, "X-Deja-Semantic")
    threshold = _probability(headers, "X-Deja-Threshold")
    max_error = _probability(headers, "X-Deja-Max-Error")
    judge = _on_off(headers, "X-Deja-Judge")
    return CacheControl(policy, ttl, max_age, namespace, semantic, threshold, max_error, judge)


def _on_off(headers: Mapping[str, str], header: str) -> bool:
    """on (the default when absent) or off."""
    raw = headers.get(header.lower())
    if raw is None:
        return True
    value = raw.strip().lower()
    if value not in ("on", "off"):
        raise _bad(header, f"expected on or off, got {raw!r}")
    return value == "on"


def _probability(headers: Mapping[str, str], header: str) -> float | None:
    raw = headers.get(header.lower())
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise _bad(header, f"expected a probability in [0, 1], got {raw!r}")
    return value
