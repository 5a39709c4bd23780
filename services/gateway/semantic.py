"""L2 + L3: embed the question, find cached prompts asked in the same context, let the verifier
confirm the intent, then fetch the answer from the store. And, after a miss, index the new entry.

Every step runs under one deadline and through clients with their own deadlines and circuit
breakers; any failure is a miss (fail open), never an error for the client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from deja.clients import DependencyError, EmbedderClient, SemanticIndexClient, StoreClient, VerifierClient
from deja.logs import get_logger
from deja.v1 import common_pb2, store_pb2, verifier_pb2
from services.gateway import observe
from services.gateway.semantic_key import SemanticParts

log = get_logger("deja.gateway.semantic")

WRITE_TIMEOUT_S = 5.0  # deadline of the background embed + index write after a miss


@dataclass(frozen=True)
class SemanticHit:
    entry: store_pb2.CacheEntry
    similarity: float
    probability: float


@dataclass(frozen=True)
class Lookup:
    hit: SemanticHit | None = None
    vector: np.ndarray | None = None  # reused to index the answer after a miss
    model_version: str = ""


class SemanticTier:
    def __init__(
        self, *, embedder: EmbedderClient, index: SemanticIndexClient, verifier: VerifierClient, store: StoreClient,
        k: int, min_similarity: float, threshold: float, timeout_s: float,
    ) -> None:  # fmt: skip
        self.embedder = embedder
        self.index = index
        self.verifier = verifier
        self.store = store
        self.k = k
        self.min_similarity = min_similarity
        self.threshold = threshold
        self.timeout_s = timeout_s

    async def close(self) -> None:
        for client in (self.embedder, self.index, self.verifier):
            await client.close()

    async def lookup(
        self, scope: common_pb2.Scope, parts: SemanticParts, api_format: str, threshold: float | None = None
    ) -> Lookup:
        """The best verified answer in `api_format`; `threshold` can only make the configured one stricter."""
        try:
            return await asyncio.wait_for(
                self._lookup(scope, parts, api_format, self.threshold_for(threshold)), self.timeout_s
            )
        except (DependencyError, TimeoutError) as exc:
            log.warning("semantic_lookup_failed_open", error=str(exc) or type(exc).__name__)
            return Lookup()

    def threshold_for(self, requested: float | None) -> float:
        """A request may ask for stricter verification (X-Deja-Threshold), never for looser."""
        return self.threshold if requested is None else max(requested, self.threshold)

    async def _lookup(self, scope: common_pb2.Scope, parts: SemanticParts, api_format: str, threshold: float) -> Lookup:
        with observe.timed("embed"):
            vectors, model = await self.embedder.embed([parts.query])
        vector, version = vectors[0], model.model_version
        with observe.timed("search"):
            hits = await self.index.search(
                scope, parts.context_hash, vector.tolist(), k=self.k, min_similarity=self.min_similarity,
                model_version=version,
            )  # fmt: skip
        if not hits:
            observe.candidates_scored([], [])
            return Lookup(vector=vector, model_version=version)
        candidates = [
            verifier_pb2.VerifyCandidate(entry_id=h.entry_id, prompt=h.prompt, similarity=h.similarity) for h in hits
        ]
        with observe.timed("verify"):
            probabilities = await self.verifier.verify(parts.query, candidates)
        observe.candidates_scored([h.similarity for h in hits], [float(p) for p in probabilities])
        ranked = sorted(zip(probabilities, hits, strict=True), key=lambda pair: -pair[0])
        for probability, hit in ranked:
            if probability < threshold:
                break
            with observe.timed("fetch"):
                entry = await self.store.get(scope, bytes.fromhex(hit.entry_id), store_pb2.TIER_SEMANTIC)
            if entry is not None and entry.api_format == api_format:
                return Lookup(SemanticHit(entry, hit.similarity, probability), vector, version)
            # The answer expired or was deleted after it was indexed: forget the point.
            await self.index.delete(scope, [hit.entry_id])
        return Lookup(vector=vector, model_version=version)

    async def remember(
        self, scope: common_pb2.Scope, parts: SemanticParts, lookup: Lookup | None, entry_id: str, expires_at_ms: int
    ) -> None:
        """Index a freshly stored answer under its question (runs after the response was sent)."""
        vector, version = (lookup.vector, lookup.model_version) if lookup and lookup.vector is not None else (None, "")
        # Nobody waits for this write, so it gets a roomier deadline than the lookup's budget: a
        # model version's first write creates its collection, which can take a second on a busy node.
        if vector is None:
            vectors, model = await self.embedder.embed([parts.query], WRITE_TIMEOUT_S)
            vector, version = vectors[0], model.model_version
        await self.index.upsert(
            scope, parts.context_hash, vector.tolist(), parts.query, entry_id, expires_at_ms, version, WRITE_TIMEOUT_S
        )
