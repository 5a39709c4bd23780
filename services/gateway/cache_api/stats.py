"""GET /v1/cache/stats: the caller's own cache statistics (tenant = hash of its API key).

Only ever the caller's tenant: there is no parameter that names another one. The store keeps
the counters (hits by tier, misses, tokens saved, live entries and bytes); if it is down the
endpoint says so with a 503 rather than inventing zeros.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from deja.clients import DependencyError, StoreClient
from deja.v1 import store_pb2
from services.gateway.error_budget import Evidence, wilson_upper
from services.gateway.errors import ApiError
from services.gateway.evidence import EvidenceBook


async def cache_stats(tenant: str, store: StoreClient, evidence: EvidenceBook, budget: dict) -> JSONResponse:
    try:
        stats = await store.stats(tenant)
    except DependencyError:
        raise ApiError(503, "cache statistics are unavailable right now", type="server_error",
                       code="stats_unavailable") from None  # fmt: skip
    body = {"object": "cache.stats", "tenant": tenant[:16], **stats_json(stats)}
    body["error_budget"] = error_budget_json(await evidence.of(tenant), budget)
    return JSONResponse(body)


def error_budget_json(evidence: Evidence, budget: dict) -> dict[str, Any]:
    """The tenant's budget, the thresholds its evidence gives today, and what it has measured."""
    serve_at = evidence.serve_at(budget["max_error"], budget["judge_floor"])
    return {
        **budget,
        # null: no score is yet backed by enough evidence, every match goes to the judge (or misses)
        "serve_threshold": None if math.isinf(serve_at) else round(serve_at, 4),
        **evidence.measured(),
    }


def stats_json(stats: store_pb2.TenantStats) -> dict[str, Any]:
    """One tenant's counters as the API shows them (here and in the admin API)."""
    lookups = stats.hits + stats.misses
    # The measured false-hit rate of the semantic tier: answers reported wrong / semantic hits served.
    false_hits = min(1.0, stats.feedback_incorrect / stats.hits_semantic) if stats.hits_semantic else None
    judge_tokens = stats.judge_input_tokens + stats.judge_output_tokens
    audit_errors = wilson_upper(stats.audit_errors, stats.audits) if stats.audits else None
    return {
        "hits": {
            "exact": stats.hits_exact,
            "semantic": stats.hits_semantic,
            "judged": stats.hits_judged,
            "total": stats.hits,
        },
        "judged_share": round(stats.hits_judged / stats.hits_semantic, 4) if stats.hits_semantic else None,
        "misses": stats.misses,
        "hit_rate": round(stats.hits / lookups, 4) if lookups else 0.0,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "tokens_saved": stats.tokens_saved,
        # What the cache saved after paying for its judge calls (the same tokens, at the judge's cheaper price).
        "tokens_saved_net_of_judge": stats.tokens_saved - judge_tokens,
        "judge": {
            "calls": stats.judge_calls,
            "yes": stats.judge_yes,
            "no": stats.judge_no,
            "failed": stats.judge_failed,
            "input_tokens": stats.judge_input_tokens,
            "output_tokens": stats.judge_output_tokens,
        },
        "audits": {
            "judged": stats.audits,
            "wrong": stats.audit_errors,
            "error_rate": round(stats.audit_errors / stats.audits, 4) if stats.audits else None,
            "error_rate_upper95": round(audit_errors, 4) if audit_errors is not None else None,
        },
        "feedback": {
            "correct": stats.feedback_correct,
            "incorrect": stats.feedback_incorrect,
            "false_hit_rate": round(false_hits, 4) if false_hits is not None else None,
        },
    }
