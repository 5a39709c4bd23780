"""Turn vectors from the embedder service, and ranking archived messages against a query.

Vectors live in the session's archive file (float16, one row per archived message), so the
archive stays the one place a session's old turns are, and a delete or purge removes them with
it. Ranking is a dot product over one session's rows (unit vectors: cosine), which is cheap at
the size of a conversation. Every embedder failure yields None: callers fail open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deja.clients import DependencyError, EmbedderClient, failed_open
from deja.logs import get_logger

log = get_logger("deja.store.sessions")

MAX_TEXT_CHARS = 4096  # the model reads 256 tokens; the rest of a long message only costs transfer
BATCH = 64  # texts per Embed call


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # float32 [n, dim], unit length
    model_version: str


class TurnEmbedder:
    def __init__(self, client: EmbedderClient | None) -> None:
        self.client = client

    async def embed(self, texts: list[str]) -> Embedded | None:
        if self.client is None or not texts:
            return None
        parts, model = [], ""
        try:
            for start in range(0, len(texts), BATCH):
                batch = [text[:MAX_TEXT_CHARS] for text in texts[start : start + BATCH]]
                vectors, info = await self.client.embed(batch)
                parts.append(vectors)
                model = info.model_version
        except DependencyError as exc:
            failed_open(log, "session_embed_failed_open", exc, texts=len(texts))
            return None
        return Embedded(np.concatenate(parts), model)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


def missing_rows(vectors: np.ndarray, count: int) -> np.ndarray:
    """Indexes of messages without a vector (an all-zero row, or no vectors at all)."""
    if vectors.shape[1] == 0:
        return np.arange(count)
    return np.flatnonzero(~vectors.any(axis=1))


def rank(
    vectors: np.ndarray, query: np.ndarray, *, k: int, min_similarity: float, skip: np.ndarray
) -> list[tuple[int, float]]:
    """(row, cosine) of the `k` rows most similar to `query`, best first; `skip` marks rows to leave out."""
    if k <= 0 or vectors.shape[0] == 0:
        return []
    scores = vectors.astype(np.float32) @ query.astype(np.float32)
    eligible = vectors.any(axis=1) & ~skip & (scores >= min_similarity)
    rows = np.flatnonzero(eligible)
    best = rows[np.argsort(-scores[rows], kind="stable")[:k]]
    return [(int(row), float(scores[row])) for row in best]
