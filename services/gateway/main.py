"""Wiring: settings from env -> ASGI app -> uvicorn (uvloop + httptools, one worker)."""

from __future__ import annotations

import uvicorn

from deja import telemetry
from deja.logs import configure_logging
from deja.settings import load
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = load(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    telemetry.init("gateway")  # before the app exists: httpx/gRPC clients made later are instrumented
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # the gateway writes its own JSON access line
        log_level="warning",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    telemetry.shutdown()
