"""The admin API: any tenant's entries, authenticated by the operator's key (`DEJA_ADMIN_KEY`).

    GET    /v1/admin/entries?tenant=T[&namespace=&model=&prompt=&limit=]   a tenant's recent entries
    DELETE /v1/admin/entries/{entry_id}?tenant=T[&namespace=]             one entry, both tiers
    POST   /v1/admin/invalidate   {"tenant": T | "all_tenants": true, "namespace", "model",
                                   "prompt", "entry_ids", "dry_run"}       by filter, both tiers
    GET    /v1/admin/stats?tenant=T                                        hits, entries, feedback

`Authorization: Bearer <admin key>` (or `X-Deja-Admin-Key`). With DEJA_ADMIN_KEY empty the admin
API is off and every admin path answers 404, so an unconfigured gateway offers no admin surface;
a missing key is 401, a wrong one 403 (compared in constant time). A tenant is named by its id,
the hex blake3 of its API key (`python -c "import blake3; print(blake3.blake3(b'sk-...').hexdigest())"`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.gateway.body import read_json_object
from services.gateway.cache_api.operations import (
    FILTER_FIELDS,
    bad,
    check_entry_id,
    check_tenant,
    entry_filter,
    entry_json,
    invalidation_json,
    limit_from,
    no_unknown,
    query_fields,
)
from services.gateway.errors import ApiError
from services.gateway.identity import require_admin
from services.gateway.tiers import Tiers


def admin_routes(tiers: Callable[[], Tiers], admin_key: str) -> list[Route]:
    def tenant_param(request: Request) -> str:
        tenant = request.query_params.get("tenant")
        if tenant is None:
            raise bad("the 'tenant' query parameter is required", "tenant")
        return check_tenant(tenant)

    def admin_query(request: Request, allowed: set[str]) -> dict[str, str]:
        return query_fields(request, allowed, also=frozenset({"tenant", "limit"}))

    async def list_entries(request: Request) -> Response:
        require_admin(request.headers, admin_key)
        tenant = tenant_param(request)
        f = entry_filter(admin_query(request, FILTER_FIELDS), tenant=tenant)
        listed = await tiers().cache.list(f, limit_from(request.query_params.get("limit")))
        data = [entry_json(e, with_tenant=True) for e in listed.entries]
        return JSONResponse({"object": "list", "data": data, "matched": listed.matched})

    async def delete_entry(request: Request) -> Response:
        require_admin(request.headers, admin_key)
        tenant = tenant_param(request)
        entry_id = check_entry_id(request.path_params["entry_id"])
        f = entry_filter({**admin_query(request, {"namespace"}), "entry_ids": [entry_id]}, tenant=tenant)
        done = await tiers().cache.invalidate(f)
        if not done.entries:
            raise ApiError(404, f"tenant has no entry {entry_id}", type="not_found_error", code="entry_not_found")
        return JSONResponse(invalidation_json(done, dry_run=False, with_tenant=True))

    async def invalidate(request: Request) -> Response:
        require_admin(request.headers, admin_key)
        body = await read_json_object(request)
        no_unknown(body, FILTER_FIELDS | {"tenant", "all_tenants", "entry_ids", "dry_run"})
        all_tenants = body.get("all_tenants", False)
        if not isinstance(all_tenants, bool):
            raise bad("'all_tenants' must be a boolean", "all_tenants")
        if all_tenants == ("tenant" in body):
            raise bad("name exactly one of 'tenant' and 'all_tenants': true", "tenant")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise bad("'dry_run' must be a boolean", "dry_run")
        tenant = None if all_tenants else check_tenant(body["tenant"])
        f = entry_filter(body, tenant=tenant, all_tenants=all_tenants)
        done = await tiers().cache.invalidate(f, dry_run=dry_run)
        return JSONResponse(invalidation_json(done, dry_run=dry_run, with_tenant=True))

    async def stats(request: Request) -> Response:
        require_admin(request.headers, admin_key)
        admin_query(request, set())
        return JSONResponse(await tiers().cache.stats(tenant_param(request)))

    async def unknown_path(request: Request) -> Response:
        require_admin(request.headers, admin_key)
        raise ApiError(404, f"no admin endpoint {request.method} {request.url.path}", type="not_found_error",
                       code="not_found")  # fmt: skip

    return [
        Route("/v1/admin/entries", list_entries, methods=["GET"]),
        Route("/v1/admin/entries/{entry_id}", delete_entry, methods=["DELETE"]),
        Route("/v1/admin/invalidate", invalidate, methods=["POST"]),
        Route("/v1/admin/stats", stats, methods=["GET"]),
        # Any other admin path: 404 in our own words (never forwarded to the provider).
        Route("/v1/admin", unknown_path, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/v1/admin/{rest:path}", unknown_path, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
