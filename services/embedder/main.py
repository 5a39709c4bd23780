"""Wiring: settings from env -> backend (model loaded before the port opens) -> cache + batcher -> gRPC."""

from __future__ import annotations

import time

import uvloop

from deja.grpc_server import run_grpc_service
from deja.logs import configure_logging, get_logger
from deja.settings import load
from deja.v1 import embedder_pb2, embedder_pb2_grpc
from services.embedder.backends import create_backend
from services.embedder.batcher import MicroBatcher
from services.embedder.cache import EmbeddingCache
from services.embedder.embedder import Embedder
from services.embedder.servicer import EmbedderServicer
from services.embedder.settings import EmbedderSettings

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name

log = get_logger("deja.embedder")


def build(settings: EmbedderSettings) -> Embedder:
    """Load the model and assemble the pipeline (blocking: call before serving)."""
    started = time.perf_counter()
    backend = create_backend(settings)
    backend.embed(["warm-up"])  # first run allocates ORT's buffers; keep that off the first caller
    info = backend.info
    log.info(
        "model_loaded",
        model_id=info.model_id,
        model_version=info.model_version,
        backend=info.backend,
        seconds=round(time.perf_counter() - started, 2),
    )
    cache = None
    if settings.cache_url:
        cache = EmbeddingCache(
            settings.cache_url,
            model_version=info.model_version,
            dimension=info.dimension,
            ttl_s=settings.cache_ttl_s,
            timeout_ms=settings.cache_timeout_ms,
        )
    batcher = MicroBatcher(backend, window_ms=settings.batch_window_ms, max_batch=settings.max_batch)
    return Embedder(backend, batcher, cache)


async def serve(settings: EmbedderSettings, embedder: Embedder) -> None:
    servicer = EmbedderServicer(embedder, max_texts=settings.max_texts, max_text_chars=settings.max_text_chars)
    await run_grpc_service(
        name="embedder",
        host=settings.host,
        port=settings.port,
        metrics_port=settings.metrics_port,
        register=lambda server: embedder_pb2_grpc.add_EmbedderServiceServicer_to_server(servicer, server),
        service_names=[SERVICE_NAME],
        probe=embedder.ready,
        on_stop=embedder.close,
    )


def main() -> None:
    settings = load(EmbedderSettings)
    configure_logging("embedder", settings.log_level)
    embedder = build(settings)
    uvloop.run(serve(settings, embedder))


if __name__ == "__main__":
    main()
