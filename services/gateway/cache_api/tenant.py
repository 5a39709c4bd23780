"""A tenant's own cache, by its API key (no admin key): stats, list, delete, invalidate, feedback.

    GET    /v1/cache/stats                                          hits, savings, error budget (stats.py)
    GET    /v1/cache/entries[?namespace=&model=&prompt=&limit=]   the caller's recent entries
    DELETE /v1/cache/entries/{entry_id}[?namespace=]               one entry, both tiers
    POST   /v1/cache/invalidate  {"namespace", "model", "prompt", "entry_ids", "dry_run"}
    POST   /v1/cache/feedback    {"entry_id", "correct": false[, "namespace"]}

The tenant is blake3 of the caller's key (`Authorization: Bearer` or `x-api-key`): there is no
parameter that names another tenant, so nothing outside it is ever touched, and an id of
another tenant's entry is simply "not found". Feedback with `"correct": false` removes the
entry from the semantic tier at once (its exact entry stays: that answer is still what the
provider said to that exact request) and counts it; `GET /v1/cache/stats` and the admin stats
show the measured false-hit rate (wrong answers reported / semantic hits served).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.gateway.body import read_json_object
from services.gateway.cache_api.operations import (
    FILTER_FIELDS,
    bad,
    check_entry_id,
    check_namespace,
    entry_filter,
    entry_json,
    invalidation_json,
    limit_from,
    no_unknown,
    query_fields,
)
from services.gateway.cache_api.stats import cache_stats
from services.gateway.errors import ApiError
from services.gateway.identity import caller_tenant
from services.gateway.tiers import Tiers


def tenant_routes(tiers: Callable[[], Tiers], budget: dict[str, Any]) -> list[Route]:
    """`budget`: the error-budget settings `GET /v1/cache/stats` reports next to the tenant's evidence."""

    async def stats(request: Request) -> Response:
        return await cache_stats(caller_tenant(request.headers), tiers().store, tiers().evidence, budget)

    async def list_entries(request: Request) -> Response:
        tenant = caller_tenant(request.headers)
        f = entry_filter(query_fields(request, FILTER_FIELDS), tenant=tenant)
        listed = await tiers().cache.list(f, limit_from(request.query_params.get("limit")))
        data = [entry_json(e, with_tenant=False) for e in listed.entries]
        return JSONResponse({"object": "list", "data": data, "matched": listed.matched})

    async def delete_entry(request: Request) -> Response:
        tenant = caller_tenant(request.headers)
        entry_id = check_entry_id(request.path_params["entry_id"])
        f = entry_filter({**query_fields(request, {"namespace"}), "entry_ids": [entry_id]}, tenant=tenant)
        done = await tiers().cache.invalidate(f)
        if not done.entries:
            raise ApiError(404, f"no entry {entry_id} in your cache", code="entry_not_found")
        return JSONResponse(invalidation_json(done, dry_run=False, with_tenant=False))

    async def invalidate(request: Request) -> Response:
        tenant = caller_tenant(request.headers)
        body = await read_json_object(request)
        no_unknown(body, FILTER_FIELDS | {"entry_ids", "dry_run"})
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise bad("'dry_run' must be a boolean", "dry_run")
        done = await tiers().cache.invalidate(entry_filter(body, tenant=tenant), dry_run=dry_run)
        return JSONResponse(invalidation_json(done, dry_run=dry_run, with_tenant=False))

    async def feedback(request: Request) -> Response:
        tenant = caller_tenant(request.headers)
        body = await read_json_object(request)
        no_unknown(body, {"entry_id", "correct", "namespace"})
        entry_id = check_entry_id(body.get("entry_id"))
        correct = body.get("correct")
        if not isinstance(correct, bool):
            raise bad("'correct' is required and must be a boolean", "correct")
        namespace = body.get("namespace")
        if namespace is not None:
            if not isinstance(namespace, str):
                raise bad("'namespace' must be a string", "namespace")
            namespace = check_namespace(namespace, "namespace") if namespace else ""
        return JSONResponse(await tiers().cache.feedback(tenant, entry_id, correct, namespace))

    return [
        Route("/v1/cache/stats", stats, methods=["GET"]),
        Route("/v1/cache/entries", list_entries, methods=["GET"]),
        Route("/v1/cache/entries/{entry_id}", delete_entry, methods=["DELETE"]),
        Route("/v1/cache/invalidate", invalidate, methods=["POST"]),
        Route("/v1/cache/feedback", feedback, methods=["POST"]),
    ]
