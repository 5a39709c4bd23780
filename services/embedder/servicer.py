"""gRPC face of the embedder: validates the call, embeds.

Failures are raised, not mapped here: the bootstrap's one mapping (deja.grpc_errors) answers a
refused call with INVALID_ARGUMENT, Triton timing out or down with DEADLINE_EXCEEDED / UNAVAILABLE,
and anything else with INTERNAL ("embedding failed").
"""

from __future__ import annotations

from deja.errors import InvalidRequest
from deja.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc
from services.embedder.embedder import Embedder


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    def __init__(self, embedder: Embedder, *, max_texts: int, max_text_chars: int) -> None:
        self._embedder = embedder
        self._max_texts = max_texts
        self._max_text_chars = max_text_chars
        info = embedder.info
        self._info = common_pb2.ModelInfo(
            model_id=info.model_id, model_version=info.model_version, dimension=info.dimension, backend=info.backend
        )

    def _check(self, texts) -> None:
        if not texts:
            raise InvalidRequest("texts is empty")
        if len(texts) > self._max_texts:
            raise InvalidRequest(f"{len(texts)} texts in one call; at most {self._max_texts}")
        for i, text in enumerate(texts):
            if len(text) > self._max_text_chars:
                raise InvalidRequest(f"texts[{i}] has {len(text)} characters; at most {self._max_text_chars}")

    async def Embed(self, request, context):
        self._check(request.texts)
        vectors = await self._embedder.embed(list(request.texts))
        return embedder_pb2.EmbedResponse(
            embeddings=[embedder_pb2.Embedding(values=row) for row in vectors.tolist()], model=self._info
        )

    async def Info(self, request, context):
        return self._info
