"""GET /v1/cache/stats: the caller's own cache statistics (tenant = hash of its API key).

Only ever the caller's tenant: there is no parameter that names another one. The store keeps
the counters (hits by tier, misses, tokens saved, live entries and bytes); if it is down the
endpoint says so with a 503 rather than inventing zeros.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from deja.clients import DependencyError, StoreClient
from deja.v1 import store_pb2
from services.gateway.cache_policy import caller_api_key, tenant_of
from services.gateway.errors import ApiError


def tenant_from(request: Request) -> str:
    """The caller's tenant id, or 401 in the provider's error shape."""
    api_key = caller_api_key(request.headers)
    if not api_key:
        raise ApiError(401, "an API key is required (Authorization: Bearer ... or x-api-key)",
                       type="invalid_request_error", code="missing_api_key")  # fmt: skip
    return tenant_of(api_key)


async def cache_stats(request: Request, store: StoreClient) -> JSONResponse:
    tenant = tenant_from(request)
    try:
        stats = await store.stats(tenant)
    except DependencyError:
        raise ApiError(503, "cache statistics are unavailable right now", type="server_error",
                       code="stats_unavailable") from None  # fmt: skip
    return JSONResponse({"object": "cache.stats", "tenant": tenant[:16], **stats_json(stats)})


def stats_json(stats: store_pb2.TenantStats) -> dict[str, Any]:
    """One tenant's counters as the API shows them (here and in the admin API)."""
    lookups = stats.hits + stats.misses
    # The measured false-hit rate of the semantic tier: answers reported wrong / semantic hits served.
    false_hits = min(1.0, stats.feedback_incorrect / stats.hits_semantic) if stats.hits_semantic else None
    return {
        "hits": {"exact": stats.hits_exact, "semantic": stats.hits_semantic, "total": stats.hits},
        "misses": stats.misses,
        "hit_rate": round(stats.hits / lookups, 4) if lookups else 0.0,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "tokens_saved": stats.tokens_saved,
        "feedback": {
            "correct": stats.feedback_correct,
            "incorrect": stats.feedback_incorrect,
            "false_hit_rate": round(false_hits, 4) if false_hits is not None else None,
        },
    }
