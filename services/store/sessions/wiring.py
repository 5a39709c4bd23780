"""Builds session memory from settings and runs it inside the store process: the gRPC
servicer, the background maintenance task, and an orderly stop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc

from deja.clients import CircuitBreaker, EmbedderClient
from deja.logs import get_logger
from deja.redis_client import redis_client
from deja.v1 import sessions_pb2, sessions_pb2_grpc
from services.store.sessions.archive import Archive
from services.store.sessions.hot import HotWindow
from services.store.sessions.memory import SessionMemory
from services.store.sessions.relevance import TurnEmbedder
from services.store.sessions.servicer import SessionServicer
from services.store.sessions.settings import SessionSettings

log = get_logger("deja.store.sessions")

SERVICE_NAME = sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name


def build_memory(settings: SessionSettings, redis_url: str, *, timeout_ms: int, pool_size: int) -> SessionMemory:
    hot = HotWindow(redis_client(redis_url, timeout_ms=timeout_ms, pool_size=pool_size), ttl_s=settings.hot_ttl_s)
    archive = Archive(Path(settings.archive_dir), level=settings.zstd_level)
    embedder = EmbedderClient(
        settings.embedder_addr, timeout_s=settings.embed_timeout_ms / 1000, breaker=CircuitBreaker()
    )
    return SessionMemory(hot, archive, TurnEmbedder(embedder), settings)


class SessionService:
    """What the store's main needs: register with the server, start, stop."""

    SERVICE_NAME = SERVICE_NAME

    def __init__(self, memory: SessionMemory) -> None:
        self.memory = memory
        self._maintenance: asyncio.Task | None = None

    @classmethod
    def from_settings(cls, settings: SessionSettings, redis_url: str, *, timeout_ms: int, pool_size: int):
        return cls(build_memory(settings, redis_url, timeout_ms=timeout_ms, pool_size=pool_size))

    def register(self, server: grpc.aio.Server) -> None:
        sessions_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(self.memory), server)

    def start(self) -> None:
        self._maintenance = asyncio.create_task(self.memory.maintain())
        log.info("sessions_started", archive_dir=str(self.memory.archive.root), window=self.memory.settings.window)

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self.memory.drain()
        await self.memory.embedder.close()
        await self.memory.hot.redis.aclose()
