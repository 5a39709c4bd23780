"""The gateway's ASGI app: routes, lifespan (clients), and errors that never leak a stack trace."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from deja import telemetry
from deja.clients import CircuitBreaker, EmbedderClient, SemanticIndexClient, StoreClient, VerifierClient
from deja.logs import get_logger
from deja.settings import load
from services.gateway import observe
from services.gateway.admin import admin_routes
from services.gateway.admission import Admission, LoopLag
from services.gateway.anthropic_format import ANTHROPIC
from services.gateway.cache_admin import CacheAdmin
from services.gateway.chat import ChatCompletions, read_body
from services.gateway.error_budget import Prior
from services.gateway.errors import ApiError
from services.gateway.evidence import EvidenceBook
from services.gateway.judge import Judge
from services.gateway.memory import Memory, MemorySettings
from services.gateway.namespaces import home_routes
from services.gateway.observe import RequestObserver
from services.gateway.openai_format import OPENAI
from services.gateway.openapi import SPEC
from services.gateway.pricing import PriceTable
from services.gateway.self_service import self_service_routes
from services.gateway.semantic import SemanticTier
from services.gateway.semantic_policy import SemanticPolicy
from services.gateway.sessions import session_routes
from services.gateway.settings import GatewaySettings, prior_path
from services.gateway.stats import cache_stats
from services.gateway.upstream import Upstream

log = get_logger("deja.gateway")

ADMIN_TIMEOUT_S = 30.0  # operator calls (listing, invalidating a whole tenant) may walk many entries


def create_app(settings: GatewaySettings) -> Starlette:
    # gRPC aio channels bind to the event loop that creates them, so the clients are made in
    # the lifespan (inside uvicorn's loop), not here.
    clients: dict[str, Any] = {}
    prices = PriceTable.parse(settings.prices)
    memory_settings = load(MemorySettings)
    prior_file = prior_path(settings)
    prior = Prior.from_reliability(prior_file, settings.error_prior_weight) if prior_file else Prior.empty()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        store = StoreClient(settings.store_addr, timeout_s=settings.store_timeout_ms / 1000, breaker=CircuitBreaker())
        upstream = Upstream(
            settings.upstream_url,
            timeout_s=settings.upstream_timeout_s,
            connect_timeout_s=settings.upstream_connect_timeout_s,
        )
        anthropic_upstream = Upstream(
            settings.anthropic_upstream_url,
            timeout_s=settings.upstream_timeout_s,
            connect_timeout_s=settings.upstream_connect_timeout_s,
        )
        semantic = None
        loop_lag = LoopLag()
        loop_lag.start()
        evidence = EvidenceBook(store, prior, refresh_s=settings.evidence_refresh_s)
        judge = None
        if settings.judge:
            judge = Judge(
                {OPENAI.name: upstream, ANTHROPIC.name: anthropic_upstream},
                {OPENAI.name: settings.judge_model_openai, ANTHROPIC.name: settings.judge_model_anthropic},
                timeout_s=settings.judge_timeout_ms / 1000,
            )
        if settings.semantic_enabled:
            # Each client has the whole semantic budget as its own deadline; the tier's overall
            # deadline is what bounds the lookup.
            budget_s = settings.semantic_timeout_ms / 1000
            semantic = SemanticTier(
                embedder=EmbedderClient(settings.embedder_addr, timeout_s=budget_s),
                index=SemanticIndexClient(settings.semantic_addr, timeout_s=budget_s),
                verifier=VerifierClient(settings.verifier_addr, timeout_s=budget_s),
                store=store,
                k=settings.semantic_k,
                min_similarity=settings.semantic_min_similarity,
                threshold=settings.verifier_threshold,
                timeout_s=budget_s,
                evidence=evidence,
                max_error=settings.max_error_rate,
                min_yes=settings.judge_min_yes,
                explore_rate=settings.audit_rate,
                nearest_first=settings.verify_nearest_first,
                admission=Admission(
                    settings.semantic_max_inflight,
                    target_s=settings.semantic_target_ms / 1000,
                    max_lag_s=settings.max_loop_lag_ms / 1000,
                    lag=loop_lag,
                ),
                verdict_memo_size=settings.verdict_memo_size,
            )
        policy = SemanticPolicy.from_patterns(
            settings.time_sensitive_pattern,
            settings.excluded_pattern,
            time_sensitive_ttl_s=settings.time_sensitive_ttl_s,
            min_chars=settings.semantic_min_chars,
            max_chars=settings.semantic_max_chars,
        )
        judging = dict(judge=judge, judge_mode=settings.judge_mode, audit_rate=settings.audit_rate)
        chat = ChatCompletions(
            store=store, upstream=upstream, max_body_bytes=settings.max_body_bytes, access_log=settings.access_log,
            policy=policy, semantic=semantic, prices=prices, **judging,
        )  # fmt: skip
        messages = ChatCompletions(
            store=store, upstream=anthropic_upstream, max_body_bytes=settings.max_body_bytes,
            access_log=settings.access_log, policy=policy, semantic=semantic, prices=prices, fmt=ANTHROPIC, **judging,
        )  # fmt: skip
        # Operator calls get their own clients: longer deadlines, breakers apart from the request path's.
        admin_index = None
        if settings.semantic_enabled:
            admin_index = SemanticIndexClient(settings.semantic_addr, timeout_s=ADMIN_TIMEOUT_S)
        admin = CacheAdmin(StoreClient(settings.store_addr, timeout_s=ADMIN_TIMEOUT_S), admin_index, evidence)
        memory = Memory.create(memory_settings, max_body_bytes=settings.max_body_bytes)
        clients.update(
            store=store, upstream=upstream, chat=chat, semantic=semantic, memory=memory, messages=messages,
            anthropic_upstream=anthropic_upstream, admin=admin, evidence=evidence,
        )  # fmt: skip
        log.info("gateway_started", upstream=settings.upstream_url, store=settings.store_addr)
        yield
        await chat.drain()
        await messages.drain()
        await memory.close()
        await admin.close()
        await anthropic_upstream.close()
        await upstream.close()
        await store.close()
        if semantic is not None:
            await semantic.close()
        await loop_lag.stop()
        log.info("gateway_stopped")

    async def chat_completions(request: Request) -> Response:
        return await clients["memory"].around(request, clients["chat"].handle)

    async def anthropic_messages(request: Request) -> Response:
        return await clients["memory"].around(request, clients["messages"].handle, ANTHROPIC)

    budget = {"max_error": settings.max_error_rate, "judge_floor": settings.verifier_threshold,
              "judge": settings.judge, "audit_rate": settings.audit_rate}  # fmt: skip

    async def stats(request: Request) -> Response:
        return await cache_stats(request, clients["store"], clients["evidence"], budget)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(SPEC)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # The gateway fails open, so it stays ready with a tier down; the body says which.
        checks = {"exact": (clients["store"], StoreClient.SERVICE)}
        semantic: SemanticTier | None = clients["semantic"]
        if semantic is not None:
            checks["embedder"] = (semantic.embedder, EmbedderClient.SERVICE)
            checks["semantic"] = (semantic.index, SemanticIndexClient.SERVICE)
            checks["verifier"] = (semantic.verifier, VerifierClient.SERVICE)
        states = await asyncio.gather(*(client.serving(service) for client, service in checks.values()))
        tiers = {name: "up" if up else "down" for name, up in zip(checks, states, strict=True)}
        status = "ok" if all(states) else "degraded"
        return JSONResponse({"status": status, "tiers": tiers})

    async def passthrough(request: Request) -> Response:
        """Every other /v1 endpoint (models, embeddings, ...) goes to the provider untouched, uncached:
        Anthropic's (a request with `anthropic-version`, or under /v1/messages/) or the OpenAI one."""
        # Re-encoded: the route hands over the decoded path, and "%1F" must not reach the upstream as a raw byte.
        path = urllib.parse.quote(request.path_params["path"], safe="/:@!$&'()*+,;=~")
        anthropic = "anthropic-version" in request.headers or path.startswith("messages/")
        upstream: Upstream = clients["anthropic_upstream" if anthropic else "upstream"]
        try:
            body = await read_body(request, settings.max_body_bytes)
            response = await upstream.send(
                request.method,
                ("/v1/" if anthropic else "/") + path,
                upstream.request_headers(request.headers),
                body or None,
                stream=True,
                params=request.url.query,
            )
        except ApiError as exc:
            return ANTHROPIC.error_response(exc) if anthropic else exc.response()

        async def relay():
            try:
                async for data in response.aiter_raw():
                    yield data
            finally:
                await response.aclose()

        headers = {**upstream.response_headers(response), "x-deja-cache": "bypass"}
        observe.note_cache("bypass")
        return StreamingResponse(relay(), status_code=response.status_code, headers=headers)

    async def api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return ApiError(exc.status_code, exc.detail, code=f"http_{exc.status_code}").response()

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, error=repr(exc))
        return ApiError(500, "internal error in the Deja gateway", type="server_error").response()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            Route("/v1/cache/stats", stats, methods=["GET"]),
            *self_service_routes(lambda: clients["admin"]),
            *admin_routes(lambda: clients["admin"], settings.admin_key),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            *session_routes(lambda: clients["memory"]),
            *home_routes(),  # any other path under /v1/cache or /v1/sessions: our 404, never the provider's
            Route("/v1/{path:path}", passthrough, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: unexpected},
        lifespan=lifespan,
        middleware=_middleware(settings.access_log),
    )
    return app


def _middleware(access_log: bool) -> list[Middleware]:
    """Per-request records always; the OpenTelemetry HTTP server span only when tracing is on."""
    stack = [Middleware(RequestObserver, access_log=access_log)]
    if telemetry.enabled():
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        # Outermost, so the server span is current for everything below; probes and scrapes are not traced.
        stack.insert(0, Middleware(OpenTelemetryMiddleware, excluded_urls="healthz,readyz,metrics",
                                   exclude_spans=["receive", "send"]))  # fmt: skip
    return stack
