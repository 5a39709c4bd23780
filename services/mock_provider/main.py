from __future__ import annotations

from dataclasses import dataclass

import uvicorn

from deja.logs import configure_logging
from deja.settings import ConfigError, load, setting
from services.mock_provider import truth as ground_truth
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
    truth: str = setting(
        "DEJA_MOCK_TRUTH",
        "",
        "workload JSONL ({question, cluster}) whose clusters the mock's answers and judge verdicts follow",
    )
    judge_noise: float = setting(
        "DEJA_MOCK_JUDGE_NOISE", 0.0, "share of judge verdicts flipped (reproducibly per pair), 0..1", minimum=0
    )
    judge_latency_ms: int = setting(
        "DEJA_MOCK_JUDGE_LATENCY_MS", 0, "latency of judge calls; -1 means DEJA_MOCK_LATENCY_MS", minimum=-1
    )

    def validate(self) -> None:
        if self.judge_noise > 1:
            raise ConfigError(f"DEJA_MOCK_JUDGE_NOISE: must be <= 1, got {self.judge_noise}")


def main() -> None:
    settings = load(MockSettings)
    configure_logging("mock-provider")
    models = [m.strip() for m in settings.models.split(",") if m.strip()]
    app = create_app(
        latency_ms=settings.latency_ms,
        models=models,
        truth=ground_truth.load(settings.truth) if settings.truth else None,
        judge_noise=settings.judge_noise,
        judge_latency_ms=settings.judge_latency_ms,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
