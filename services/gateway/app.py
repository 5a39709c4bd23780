"""The gateway's ASGI app: its route table (each module lists its own routes), the lifespan that opens
and closes the tiers, and the error handlers that never leak a stack trace.

A chat request's path: `pipeline.CachePipeline.handle` (session_memory, cache_headers, body, the
format's parse, recall, exact and semantic lookups, upstream), then the cache write and the session's
recording in the background. See `services/gateway/__init__.py` for the map of the rooms.
"""

from __future__ import annotations

import contextlib

from starlette.applications import Starlette

from deja.logs import get_logger
from deja.settings import load
from services.gateway import observe
from services.gateway.anthropic.format import ANTHROPIC
from services.gateway.cache_api.admin import admin_routes
from services.gateway.cache_api.tenant import tenant_routes
from services.gateway.error_budget import Prior
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.namespaces import home_routes
from services.gateway.openai.format import OPENAI
from services.gateway.openapi import openapi_routes
from services.gateway.passthrough import passthrough_routes
from services.gateway.pipeline import CachePipeline
from services.gateway.pricing import PriceTable
from services.gateway.probes import probe_routes
from services.gateway.session_api import session_routes
from services.gateway.settings import GatewaySettings, MemorySettings, prior_path
from services.gateway.tiers import Tiers

log = get_logger("deja.gateway")


def create_app(settings: GatewaySettings) -> Starlette:
    memory_settings = load(MemorySettings)
    prices = PriceTable.parse(settings.prices)
    prior_file = prior_path(settings)
    prior = Prior.from_reliability(prior_file, settings.error_prior_weight) if prior_file else Prior.empty()

    def tiers() -> Tiers:
        return app.state.tiers

    pipelines = [CachePipeline(fmt, settings, prices, tiers) for fmt in (OPENAI, ANTHROPIC)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.tiers = Tiers.open(settings, memory_settings, prior)
        log.info("gateway_started", upstream=settings.upstream_url, store=settings.store_addr)
        yield
        for pipeline in pipelines:
            await pipeline.drain()
        await app.state.tiers.close()
        log.info("gateway_stopped")

    budget = {"max_error": settings.max_error_rate, "judge_floor": settings.verifier_threshold,
              "judge": settings.judge, "audit_rate": settings.audit_rate}  # fmt: skip
    app = Starlette(
        routes=[
            *(pipeline.route() for pipeline in pipelines),
            *tenant_routes(tiers, budget),
            *admin_routes(tiers, settings.admin_key),
            *probe_routes(tiers),
            *openapi_routes(),
            *session_routes(tiers),
            *home_routes(),  # any other path under /v1/cache or /v1/sessions: our 404, never the provider's
            *passthrough_routes(tiers, settings.max_body_bytes),  # last: every other /v1 path
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
        middleware=observe.middleware(settings.access_log),
    )
    return app
