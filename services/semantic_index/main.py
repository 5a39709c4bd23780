"""Wiring: settings from env -> backend (edge or qdrant) -> gRPC server, health tied to the backend,
and a background task that purges expired points."""

from __future__ import annotations

import asyncio

import uvloop

from deja.grpc_server import run_grpc_service
from deja.logs import configure_logging, get_logger
from deja.settings import load
from deja.v1 import semantic_index_pb2, semantic_index_pb2_grpc
from services.semantic_index.backend import SemanticBackend
from services.semantic_index.servicer import SemanticIndexServicer, purge_periodically, stop_task
from services.semantic_index.settings import SemanticIndexSettings

SERVICE_NAME = semantic_index_pb2.DESCRIPTOR.services_by_name["SemanticIndexService"].full_name

log = get_logger("deja.semantic")


async def open_backend(settings: SemanticIndexSettings) -> SemanticBackend:
    if settings.backend == "qdrant":
        from services.semantic_index.qdrant_backend import QdrantBackend

        return QdrantBackend(
            settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            prefix=settings.collection_prefix,
            timeout_s=settings.qdrant_timeout_s,
            prefer_grpc=settings.qdrant_prefer_grpc,
        )
    from services.semantic_index.edge_backend import EdgeBackend

    # Loading segments and replaying the WAL reads disk: keep it off the event loop.
    return await asyncio.to_thread(
        EdgeBackend.open, settings.data_dir, prefix=settings.collection_prefix, workers=settings.workers
    )


async def serve(
    settings: SemanticIndexSettings,
    *,
    backend: SemanticBackend | None = None,
    probe_interval_s: float = 1.0,
    grace_s: float = 5.0,
) -> None:
    """Run until SIGTERM/SIGINT. `backend` (tests): serve this one instead of opening the configured
    one; it is closed on stop all the same."""
    backend = backend or await open_backend(settings)
    purger = asyncio.create_task(purge_periodically(backend, settings.purge_interval_s))
    log.info("semantic_backend", backend=backend.name, purge_interval_s=settings.purge_interval_s)

    async def stop() -> None:
        await stop_task(purger)
        await backend.close()

    try:
        await run_grpc_service(
            name="semantic-index",
            host=settings.host,
            port=settings.port,
            metrics_port=settings.metrics_port,
            register=lambda server: semantic_index_pb2_grpc.add_SemanticIndexServiceServicer_to_server(
                SemanticIndexServicer(backend), server
            ),
            service_names=[SERVICE_NAME],
            probe=backend.healthy,
            probe_interval_s=probe_interval_s,
            grace_s=grace_s,
            on_stop=stop,
        )
    except BaseException:
        # run_grpc_service failed before on_stop could run (e.g. the port is taken): release the
        # index anyway, so an edge directory is not left locked by a dying process.
        if not purger.done():
            await stop()
        raise


def main() -> None:
    settings = load(SemanticIndexSettings)
    configure_logging("semantic-index", settings.log_level)
    uvloop.run(serve(settings))
