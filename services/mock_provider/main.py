from __future__ import annotations

from dataclasses import dataclass

import uvicorn

from deja.logs import configure_logging
from deja.settings import load, setting
from services.mock_provider.app import create_app


@dataclass(frozen=True)
class MockSettings:
    host: str = setting("DEJA_MOCK_HOST", "127.0.0.1", "interface the mock provider binds")
    port: int = setting("DEJA_MOCK_PORT", 8090, "HTTP port of the mock provider", minimum=1)
    latency_ms: int = setting("DEJA_MOCK_LATENCY_MS", 300, "simulated provider latency per request", minimum=0)
    models: str = setting(
        "DEJA_MOCK_MODELS",
        "gpt-4o-mini,gpt-4o,mock-1,claude-sonnet-4-6,claude-haiku-4-5",
        "comma-separated models it knows (both APIs)",
    )


def main() -> None:
    settings = load(MockSettings)
    configure_logging("mock-provider")
    models = [m.strip() for m in settings.models.split(",") if m.strip()]
    app = create_app(latency_ms=settings.latency_ms, models=models)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
