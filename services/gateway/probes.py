"""What operators and orchestrators poll: `/healthz` (the process answers), `/readyz` (which cache tiers
are up; it stays 200 with a tier down, since the gateway fails open) and `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deja.clients import EmbedderClient, SemanticIndexClient, StoreClient, VerifierClient
from services.gateway.tiers import Tiers


def probe_routes(tiers: Callable[[], Tiers]) -> list[Route]:
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # The gateway fails open, so it stays ready with a tier down; the body says which.
        running = tiers()
        checks = {"exact": (running.store, StoreClient.SERVICE)}
        semantic = running.semantic
        if semantic is not None:
            checks["embedder"] = (semantic.embedder, EmbedderClient.SERVICE)
            checks["semantic"] = (semantic.index, SemanticIndexClient.SERVICE)
            checks["verifier"] = (semantic.verifier, VerifierClient.SERVICE)
        states = await asyncio.gather(*(client.serving(service) for client, service in checks.values()))
        tiers_up = {name: "up" if up else "down" for name, up in zip(checks, states, strict=True)}
        status = "ok" if all(states) else "degraded"
        return JSONResponse({"status": status, "tiers": tiers_up})

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
