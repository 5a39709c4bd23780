"""The server backend: a Qdrant server through qdrant-client's async API (`:memory:` for tests).

Collections are created on first use (one per embedding model version) and found again by name,
so several service replicas can share one Qdrant server. Nothing is contacted at start-up: an
unreachable server makes the health probe NOT_SERVING and calls UNAVAILABLE, and the service
recovers by itself when the server is back.

The collection layout follows Qdrant's multitenancy guidance: `tenant` is a tenant-keyed payload
index and the HNSW graph is built per tenant (payload_m) instead of globally (m=0), since no
search ever crosses tenants. `:memory:` runs the client's own in-process engine, which ignores
payload indexes and computes on the event loop: tests only.
"""

from __future__ import annotations

import asyncio

import grpc
import httpx
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from deja.logs import get_logger
from services.semantic_index import filters
from services.semantic_index.backend import (
    ENTRY_ID,
    EXPIRES_AT_MS,
    PROMPT,
    BackendUnavailable,
    Hit,
    IndexPoint,
    SearchQuery,
    check_dimension,
    collection_name,
    engine_threshold,
    to_hits,
)

log = get_logger("deja.semantic.qdrant")

_UNAVAILABLE_HTTP = {429, 502, 503, 504}
_UNAVAILABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _unavailable(exc: BaseException) -> bool:
    """Transport trouble and overload (retry later) as opposed to a bug or a refused request."""
    if isinstance(exc, ResponseHandlingException | httpx.TransportError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _UNAVAILABLE_HTTP
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code() in _UNAVAILABLE_GRPC
    return False


class _Qdrant:
    """qdrant_client's spelling of the conditions in services.semantic_index.filters."""

    @staticmethod
    def match(key: str, value: str) -> qm.FieldCondition:
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))

    @staticmethod
    def match_any(key: str, values: list[str]) -> qm.FieldCondition:
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=values))

    @staticmethod
    def has_id(ids: list[str]) -> qm.HasIdCondition:
        return qm.HasIdCondition(has_id=ids)

    @staticmethod
    def live(now: int) -> qm.FieldCondition:
        return qm.FieldCondition(key=EXPIRES_AT_MS, range=qm.Range(gt=now))

    @staticmethod
    def expired(now: int) -> qm.FieldCondition:
        return qm.FieldCondition(key=EXPIRES_AT_MS, range=qm.Range(lte=now))


class QdrantBackend:
    name = "qdrant"

    def __init__(
        self,
        url: str,
        *,
        api_key: str = "",
        prefix: str = "deja_",
        timeout_s: int = 5,
        prefer_grpc: bool = False,
    ) -> None:
        self._local = url == ":memory:"
        if self._local:
            self._client = AsyncQdrantClient(location=":memory:", check_compatibility=False)
        else:
            self._client = AsyncQdrantClient(
                url=url, api_key=api_key or None, timeout=timeout_s, prefer_grpc=prefer_grpc, check_compatibility=False
            )
        self._url = url
        self._prefix = prefix
        self._dimensions: dict[str, int] = {}  # collection name -> vector size, once seen
        self._create_lock = asyncio.Lock()

    async def _call(self, coro):
        """Await a client call, turning transport failures into BackendUnavailable."""
        try:
            return await coro
        except Exception as exc:
            if _unavailable(exc):
                raise BackendUnavailable("qdrant unavailable") from exc
            raise

    # -- collections -------------------------------------------------------------------

    async def _dimension(self, name: str) -> int | None:
        """The collection's vector size, or None when it does not exist."""
        if name in self._dimensions:
            return self._dimensions[name]
        if not await self._call(self._client.collection_exists(name)):
            return None
        info = await self._call(self._client.get_collection(name))
        self._dimensions[name] = info.config.params.vectors.size
        return self._dimensions[name]

    async def _ensure(self, name: str, dimension: int) -> int:
        known = await self._dimension(name)
        if known is not None:
            return known
        async with self._create_lock:
            known = await self._dimension(name)
            if known is not None:
                return known
            try:
                await self._call(
                    self._client.create_collection(
                        name,
                        vectors_config=qm.VectorParams(size=dimension, distance=qm.Distance.COSINE),
                        hnsw_config=None if self._local else qm.HnswConfigDiff(m=0, payload_m=16),
                    )
                )
            except BackendUnavailable:
                raise
            except Exception:
                # Another replica may have created it between our check and our create.
                if await self._dimension(name) is None:
                    raise
                return self._dimensions[name]
            if not self._local:  # the in-process engine ignores (and warns about) payload indexes
                for key, schema in filters.payload_indexes(
                    qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
                    qm.PayloadSchemaType.KEYWORD,
                    qm.IntegerIndexParams(type=qm.IntegerIndexType.INTEGER, lookup=False, range=True),
                ):
                    await self._call(self._client.create_payload_index(name, key, field_schema=schema, wait=True))
            log.info("qdrant_collection_created", collection=name, dimension=dimension)
            self._dimensions[name] = dimension
            return dimension

    async def _names(self) -> list[str]:
        response = await self._call(self._client.get_collections())
        return sorted(c.name for c in response.collections if c.name.startswith(self._prefix))

    # -- operations --------------------------------------------------------------------

    async def upsert(self, point: IndexPoint) -> None:
        name = collection_name(self._prefix, point.model_version)
        check_dimension(await self._ensure(name, point.vector.size), point.vector, point.model_version)
        await self._call(
            self._client.upsert(
                name,
                [qm.PointStruct(id=point.id, vector=point.vector.tolist(), payload=point.payload())],
                wait=True,  # a search right after the upsert must see it, as with the embedded engine
            )
        )

    async def search(self, query: SearchQuery) -> list[Hit]:
        name = collection_name(self._prefix, query.model_version)
        known = await self._dimension(name)
        if known is None:
            return []
        check_dimension(known, query.vector, query.model_version)
        response = await self._call(
            self._client.query_points(
                name,
                query=query.vector.tolist(),
                query_filter=qm.Filter(must=filters.search(_Qdrant, query)),
                limit=query.k,
                with_payload=[ENTRY_ID, PROMPT],
                with_vectors=False,
                score_threshold=engine_threshold(query.min_similarity),
            )
        )
        return to_hits([(p.score, p.payload or {}) for p in response.points], query.min_similarity)

    async def _delete_matching(self, conditions: list) -> int:
        deleted = 0
        for name in await self._names():
            matching = qm.Filter(must=conditions)
            found = (await self._call(self._client.count(name, count_filter=matching, exact=True))).count
            if found:
                await self._call(self._client.delete(name, qm.FilterSelector(filter=matching), wait=True))
                deleted += found
        return deleted

    async def delete(self, tenant: str, namespace: str, entry_ids: list[str]) -> int:
        if not entry_ids:
            return 0
        return await self._delete_matching(filters.delete(_Qdrant, tenant, namespace, entry_ids))

    async def drop_tenant(self, tenant: str) -> int:
        return await self._delete_matching(filters.tenant(_Qdrant, tenant))

    async def invalidate(self, tenant: str, namespace: str | None, entry_ids: list[str]) -> int:
        return await self._delete_matching(filters.invalidate(_Qdrant, tenant, namespace, entry_ids))

    async def count(self, tenant: str | None = None, *, include_expired: bool = False) -> int:
        conditions = filters.count(_Qdrant, tenant, include_expired)
        matching = qm.Filter(must=conditions) if conditions else None
        total = 0
        for name in await self._names():
            total += (await self._call(self._client.count(name, count_filter=matching, exact=True))).count
        return total

    async def purge_expired(self) -> int:
        return await self._delete_matching(filters.expired(_Qdrant))

    async def healthy(self) -> bool:
        try:
            await asyncio.wait_for(self._client.get_collections(), timeout=2.0)
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self._client.close()
