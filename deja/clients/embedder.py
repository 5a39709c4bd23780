"""Typed client of the embedder service."""

from __future__ import annotations

import numpy as np

from deja.clients.base import CircuitBreaker, GrpcClient
from deja.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc


class EmbedderClient(GrpcClient):
    SERVICE = embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name

    def __init__(self, addr: str, *, timeout_s: float, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(addr, timeout_s=timeout_s, breaker=breaker)
        self._stub = embedder_pb2_grpc.EmbedderServiceStub(self.channel)

    async def embed(self, texts: list[str], timeout_s: float | None = None) -> tuple[np.ndarray, common_pb2.ModelInfo]:
        """float32 array [len(texts), dimension], L2-normalised, and the model that made it."""
        reply = await self.call(self._stub.Embed, embedder_pb2.EmbedRequest(texts=texts), timeout_s)
        vectors = np.array([list(e.values) for e in reply.embeddings], dtype=np.float32)
        return vectors.reshape(len(texts), reply.model.dimension), reply.model

    async def info(self) -> common_pb2.ModelInfo:
        return await self.call(self._stub.Info, common_pb2.InfoRequest())
