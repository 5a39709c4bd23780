"""What one Embed call does: cached vectors from Redis, the rest through the micro-batcher, write-back."""

from __future__ import annotations

import asyncio

import numpy as np

from services.embedder.base import EmbeddingBackend, ModelInfo
from services.embedder.batcher import MicroBatcher
from services.embedder.cache import EmbeddingCache


class Embedder:
    def __init__(self, backend: EmbeddingBackend, batcher: MicroBatcher, cache: EmbeddingCache | None = None) -> None:
        self.backend = backend
        self.batcher = batcher
        self.cache = cache

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    async def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.info.dimension), dtype=np.float32)
        cached = await self.cache.get_many(texts) if self.cache else [None] * len(texts)
        missing: dict[str, list[int]] = {}  # a text repeated in one call is embedded once
        for row, (text, vector) in enumerate(zip(texts, cached, strict=True)):
            if vector is None:
                missing.setdefault(text, []).append(row)
            else:
                out[row] = vector
        if missing:
            unique = list(missing)
            vectors = await self.batcher.embed(unique)
            for text, vector in zip(unique, vectors, strict=True):
                out[missing[text]] = vector
            if self.cache:
                self.cache.put_many(unique, vectors)
        return out

    async def ready(self) -> bool:
        """Health: the model is loaded (and, for a remote backend such as Triton, reachable) and the
        batcher's worker has not died. Redis is optional."""
        backend_ready = getattr(self.backend, "ready", None)
        if backend_ready is not None and not await asyncio.to_thread(backend_ready):
            return False
        return self.batcher.healthy

    async def close(self) -> None:
        await self.batcher.close()
        if self.cache:
            await self.cache.close()
