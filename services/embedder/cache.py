"""Embedding cache in Redis: a repeated text costs one MGET (~0.1 ms) instead of a model run (~5 ms).

    deja:emb:<model_version>:<blake3(text) hex>  ->  float32 bytes (dimension * 4), with a TTL

No hash tag: on a Redis Cluster the vectors spread over every shard, and a lookup of several texts
is one MGET per slot (deja/redis_client.py).

The model version is in the key, so a new model never reads an old model's vectors. The cache
only ever saves time: Redis down, slow or returning junk means the texts are embedded as if the
cache were off, never an error. After a few failures a circuit breaker stops asking Redis for a
cool-down, so a dead Redis costs nothing per call instead of a timeout each.
"""

from __future__ import annotations

import asyncio
import contextlib

import blake3
import numpy as np
from prometheus_client import Counter

from deja.clients.base import CircuitBreaker
from deja.logs import get_logger
from deja.redis_client import mget, redis_client

log = get_logger("deja.embedder")

LOOKUPS = Counter("deja_embedding_cache_lookups_total", "texts looked up in the embedding cache", ["result"])


class EmbeddingCache:
    def __init__(
        self,
        url: str,
        *,
        model_version: str,
        dimension: int,
        ttl_s: int,
        timeout_ms: int,
        pool_size: int = 16,
    ) -> None:
        self._timeout_s = timeout_ms / 1000
        # Waits (briefly) for a free connection under bursts instead of failing; a Redis Cluster for a
        # redis+cluster:// URL, where the keys (no hash tag) spread over every shard.
        self._redis = redis_client(url, timeout_ms=timeout_ms, pool_size=pool_size)
        self._prefix = f"deja:emb:{model_version}:"
        self._dimension = dimension
        self._ttl_s = ttl_s
        self._breaker = CircuitBreaker(threshold=3, cooldown_s=2.0)
        self._writes: set[asyncio.Task[None]] = set()
        self._up = True
        # counters, read by tests and logs
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def key(self, text: str) -> str:
        return self._prefix + blake3.blake3(text.encode()).hexdigest()

    def _record(self, ok: bool, op: str, exc: BaseException | None = None) -> None:
        self._breaker.record(ok)
        if not ok:
            self.errors += 1
        if ok != self._up:  # log transitions only: a dead Redis must not flood the log
            self._up = ok
            if ok:
                log.info("embedding_cache_up")
            else:
                log.warning("embedding_cache_down", op=op, error=repr(exc))

    async def get_many(self, texts: list[str]) -> list[np.ndarray | None]:
        """One MGET (on a cluster, one per slot in one pipeline); None for a miss and for every text when
        Redis cannot answer in time."""
        if not self._breaker.allow():
            self.misses += len(texts)
            return [None] * len(texts)
        try:
            # wait_for bounds the whole call (pool wait + connect + read), not each step separately
            raw = await asyncio.wait_for(mget(self._redis, [self.key(t) for t in texts]), self._timeout_s)
        except Exception as exc:
            self._record(False, "mget", exc)
            self.misses += len(texts)
            return [None] * len(texts)
        self._record(True, "mget")
        found: list[np.ndarray | None] = []
        for value in raw:
            if value is not None and len(value) == self._dimension * 4:
                found.append(np.frombuffer(value, dtype=np.float32))
            else:
                found.append(None)  # absent, or not a vector of this model: recompute and overwrite
        hits = sum(v is not None for v in found)
        self.hits += hits
        self.misses += len(texts) - hits
        LOOKUPS.labels("hit").inc(hits)
        LOOKUPS.labels("miss").inc(len(texts) - hits)
        return found

    def put_many(self, texts: list[str], vectors: np.ndarray) -> None:
        """Write back in the background: the caller already has its vectors and must not wait on Redis."""
        if not texts or not self._breaker.allow():
            return
        task = asyncio.create_task(self._put(texts, np.ascontiguousarray(vectors, dtype=np.float32)))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, texts: list[str], vectors: np.ndarray) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for text, vector in zip(texts, vectors, strict=True):
            pipe.set(self.key(text), vector.tobytes(), ex=self._ttl_s)
        try:
            await asyncio.wait_for(pipe.execute(), self._timeout_s)
        except Exception as exc:
            self._record(False, "set", exc)
        else:
            self._record(True, "set")

    async def drain(self) -> None:
        """Wait for the background writes in flight (tests, shutdown)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def ping(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(await asyncio.wait_for(self._redis.ping(), self._timeout_s))
        return False

    async def close(self) -> None:
        await self.drain()
        await self._redis.aclose()
