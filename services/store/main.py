"""Wiring: settings from env -> Redis store -> gRPC server with health tied to Redis."""

from __future__ import annotations

import asyncio

import uvloop

from deja.grpc_server import run_grpc_service
from deja.logs import configure_logging
from deja.settings import load
from deja.v1 import store_pb2, store_pb2_grpc
from services.store.observations import ObservationLog
from services.store.redis_store import RedisExactStore
from services.store.servicer import StoreServicer
from services.store.sessions.settings import SessionSettings
from services.store.sessions.wiring import SessionService
from services.store.settings import StoreSettings
from services.store.totals import refresh_totals

SERVICE_NAME = store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name


async def serve(settings: StoreSettings, session_settings: SessionSettings) -> None:
    store = RedisExactStore.from_url(
        settings.redis_url,
        timeout_ms=settings.redis_timeout_ms,
        pool_size=settings.redis_pool_size,
        default_ttl_s=settings.default_ttl_s,
        max_ttl_s=settings.max_ttl_s,
        max_entry_bytes=settings.max_entry_bytes,
    )

    sessions = SessionService.from_settings(
        session_settings, settings.redis_url, timeout_ms=settings.redis_timeout_ms, pool_size=settings.redis_pool_size
    )
    sessions.start()
    refresher = asyncio.create_task(refresh_totals(store))
    observations = ObservationLog(store.redis, max_kept=settings.max_observations)

    async def stop() -> None:
        refresher.cancel()
        await sessions.close()
        await store.close()

    async def redis_reachable() -> bool:
        try:
            return await asyncio.wait_for(store.ping(), timeout=1.0)
        except Exception:
            return False

    await run_grpc_service(
        name="store",
        host=settings.host,
        port=settings.port,
        metrics_port=settings.metrics_port,
        register=lambda server: (
            store_pb2_grpc.add_StoreServiceServicer_to_server(StoreServicer(store, observations), server),
            sessions.register(server),
        ),
        service_names=[SERVICE_NAME, SessionService.SERVICE_NAME],
        probe=redis_reachable,
        on_stop=stop,
    )


def main() -> None:
    settings, session_settings = load(StoreSettings), load(SessionSettings)
    configure_logging("store", settings.log_level)
    uvloop.run(serve(settings, session_settings))
