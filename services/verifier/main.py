"""Wiring: settings from env -> scorer (model loaded before the port opens) -> gRPC server.

The model is loaded before the server starts, so SERVING on the health check means "can
verify now". There is no dependency probe: the model lives in this process.
"""

from __future__ import annotations

import asyncio

import uvloop

from deja.grpc_server import run_grpc_service
from deja.logs import configure_logging
from deja.settings import load
from deja.v1 import verifier_pb2, verifier_pb2_grpc
from services.verifier.scorer import PairScorer, load_scorer
from services.verifier.servicer import VerifierServicer
from services.verifier.settings import VerifierSettings

SERVICE_NAME = verifier_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name


async def serve(settings: VerifierSettings, scorer: PairScorer | None = None, *, grace_s: float = 5.0) -> None:
    """Run until SIGTERM/SIGINT. `scorer` lets a caller (tests) reuse an already loaded model."""
    scorer = scorer or load_scorer(settings)
    servicer = VerifierServicer(scorer, max_candidates=settings.max_candidates, max_text_chars=settings.max_text_chars)

    async def stop_worker() -> None:
        await asyncio.to_thread(servicer.close)

    # A model in this process is ready once loaded; a remote one (Triton) is probed.
    remote_ready = getattr(scorer, "ready", None)

    async def probe() -> bool:
        return await asyncio.to_thread(remote_ready)

    await run_grpc_service(
        name="verifier",
        host=settings.host,
        port=settings.port,
        metrics_port=settings.metrics_port,
        register=lambda server: verifier_pb2_grpc.add_VerifierServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        probe=probe if remote_ready else None,
        grace_s=grace_s,
        on_stop=stop_worker,
    )


def main() -> None:
    settings = load(VerifierSettings)
    configure_logging("verifier", settings.log_level)
    uvloop.run(serve(settings))
