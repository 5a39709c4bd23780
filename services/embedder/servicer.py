"""gRPC face of the embedder: validates the call, embeds, maps failures to status codes."""

from __future__ import annotations

import grpc

from deja.clients.status import failure_status
from deja.logs import get_logger
from deja.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc
from services.embedder.embedder import Embedder

log = get_logger("deja.embedder")


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    def __init__(self, embedder: Embedder, *, max_texts: int, max_text_chars: int) -> None:
        self._embedder = embedder
        self._max_texts = max_texts
        self._max_text_chars = max_text_chars
        info = embedder.info
        self._info = common_pb2.ModelInfo(
            model_id=info.model_id, model_version=info.model_version, dimension=info.dimension, backend=info.backend
        )

    def _invalid(self, texts) -> str | None:
        if not texts:
            return "texts is empty"
        if len(texts) > self._max_texts:
            return f"{len(texts)} texts in one call; at most {self._max_texts}"
        for i, text in enumerate(texts):
            if len(text) > self._max_text_chars:
                return f"texts[{i}] has {len(text)} characters; at most {self._max_text_chars}"
        return None

    async def Embed(self, request, context):
        problem = self._invalid(request.texts)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            vectors = await self._embedder.embed(list(request.texts))
        except Exception as exc:
            log.error("embed_error", texts=len(request.texts), error=repr(exc))
            await context.abort(failure_status(exc), "embedding failed")
        return embedder_pb2.EmbedResponse(
            embeddings=[embedder_pb2.Embedding(values=row) for row in vectors.tolist()], model=self._info
        )

    async def Info(self, request, context):
        return self._info
