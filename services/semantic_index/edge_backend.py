"""The embedded backend: Qdrant's own engine in this process (qdrant-edge-py), data on local disk.

Layout under the data directory (one collection per embedding model version):

    LOCK                         flock held while a process has the index open
    <prefix><version>/collection.json   {"model_version", "dimension"}, written last on creation
    <prefix><version>/shard/     the EdgeShard (segments, WAL, edge_config.json)

One process per directory: the engine keeps its WAL and segments open for writing, so a second
process would corrupt them. The LOCK file makes that a clear start-up error instead.

Engine calls block (the engine releases the GIL while it works) and run on a small thread pool,
so the event loop keeps serving. The shard is safe to call from several threads at once.

No HNSW graph is built (indexing_threshold=0): every search is filtered to one tenant, namespace
and context, which the payload indexes find directly, and scoring those points exhaustively is
exact and fast (~0.4 ms at 100k points). A Qdrant server (the `qdrant` backend) is the answer for
indexes where a single scope holds hundreds of thousands of points.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import functools
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import qdrant_edge as qe

from deja.logs import get_logger
from deja.settings import ConfigError
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

log = get_logger("deja.semantic.edge")

_META = "collection.json"


class _Edge:
    """qdrant_edge's spelling of the conditions in services.semantic_index.filters."""

    @staticmethod
    def match(key: str, value: str) -> qe.FieldCondition:
        return qe.FieldCondition(key, match=qe.MatchValue(value))

    @staticmethod
    def match_any(key: str, values: list[str]) -> qe.FieldCondition:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    @staticmethod
    def has_id(ids: list[str]) -> qe.HasIdCondition:
        return qe.HasIdCondition(set(ids))

    @staticmethod
    def live(now: int) -> qe.FieldCondition:
        return qe.FieldCondition(EXPIRES_AT_MS, range=qe.RangeFloat(gt=now))

    @staticmethod
    def expired(now: int) -> qe.FieldCondition:
        return qe.FieldCondition(EXPIRES_AT_MS, range=qe.RangeFloat(lte=now))


@dataclass
class _Collection:
    name: str
    model_version: str
    dimension: int
    shard: qe.EdgeShard


class EdgeBackend:
    name = "edge"

    def __init__(self, data_dir: Path, lock_file, collections: dict[str, _Collection], prefix: str, workers: int):
        self._dir = data_dir
        self._lock_file = lock_file
        self._collections = collections  # by model_version
        self._prefix = prefix
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="semantic-edge")
        # Creations in flight, by model version: shared by concurrent upserts and shielded from
        # their cancellation (a caller's deadline must not cut a half-built shard from the map).
        self._creating: dict[str, asyncio.Future[_Collection]] = {}
        self._closed = False

    # -- opening and closing -----------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | os.PathLike, *, prefix: str = "deja_", workers: int = 4) -> EdgeBackend:
        """Lock the directory and load every collection in it (blocking; call at start-up)."""
        path = Path(data_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_file = (path / "LOCK").open("a+")
        except OSError as exc:
            raise ConfigError(f"DEJA_SEMANTIC_DATA_DIR: cannot use {str(path)!r}: {exc.strerror}") from None
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "?"
            lock_file.close()
            raise ConfigError(
                f"DEJA_SEMANTIC_DATA_DIR: {str(path)!r} is in use by another process (pid {holder}); "
                "the edge backend allows one process per directory"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(str(os.getpid()))
        lock_file.flush()
        try:
            collections = cls._load_all(path, prefix)
        except BaseException:
            lock_file.close()
            raise
        log.info("edge_opened", data_dir=str(path), collections=sorted(collections))
        return cls(path, lock_file, collections, prefix, workers)

    @staticmethod
    def _load_all(path: Path, prefix: str) -> dict[str, _Collection]:
        collections: dict[str, _Collection] = {}
        for folder in sorted(path.iterdir()):
            if not folder.is_dir() or not folder.name.startswith(prefix):
                continue
            meta_path = folder / _META
            if not meta_path.exists():
                # Creation writes the metadata last, after the shard: without it the folder is
                # a creation cut short, which cannot hold points yet. Clear it so a retry works.
                log.warning("edge_incomplete_collection_removed", folder=str(folder))
                shutil.rmtree(folder)
                continue
            try:
                meta = json.loads(meta_path.read_text())
                shard = qe.EdgeShard.load(str(folder / "shard"))
            except Exception as exc:
                for loaded in collections.values():
                    loaded.shard.close()
                # Refuse to start rather than serve a partial index; the message names the folder.
                raise ConfigError(f"DEJA_SEMANTIC_DATA_DIR: cannot load {str(folder)!r}: {exc}") from None
            collections[meta["model_version"]] = _Collection(
                folder.name, meta["model_version"], int(meta["dimension"]), shard
            )
        return collections

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Let in-flight engine calls finish before the shards go away.
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        for collection in self._collections.values():
            try:
                collection.shard.flush()
                collection.shard.close()
            except Exception as exc:
                log.error("edge_close_failed", collection=collection.name, error=repr(exc))
        self._collections.clear()
        self._lock_file.close()  # releases the flock
        log.info("edge_closed", data_dir=str(self._dir))

    # -- helpers -----------------------------------------------------------------------

    async def _run(self, fn, *args):
        if self._closed:
            raise BackendUnavailable("semantic index is closed")
        try:
            # The caller's context goes along, so log lines from the pool keep the service's fields.
            call = functools.partial(contextvars.copy_context().run, fn, *args)
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except RuntimeError as exc:
            if self._closed:  # the pool was shut down while this call waited for it
                raise BackendUnavailable("semantic index is closed") from exc
            raise

    def _create(self, model_version: str, dimension: int) -> _Collection:
        name = collection_name(self._prefix, model_version)
        folder = self._dir / name
        if folder.exists():
            shutil.rmtree(folder)  # leftovers of a creation cut short (see _load_all)
        folder.mkdir(parents=True)
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
        )
        shard = qe.EdgeShard.create(str(folder / "shard"), config)
        for key, schema in filters.payload_indexes(
            qe.KeywordIndexParams(is_tenant=True),
            qe.PayloadSchemaType.Keyword,
            qe.IntegerIndexParams(lookup=False, range=True),
        ):
            shard.update(qe.UpdateOperation.create_field_index(key, schema))
        shard.flush()
        tmp = folder / f"{_META}.tmp"
        tmp.write_text(json.dumps({"model_version": model_version, "dimension": dimension}))
        tmp.replace(folder / _META)
        log.info("edge_collection_created", collection=name, dimension=dimension)
        return _Collection(name, model_version, dimension, shard)

    async def _collection_for(self, point: IndexPoint) -> _Collection:
        version = point.model_version
        collection = self._collections.get(version)
        if collection is not None:
            return collection
        creating = self._creating.get(version)
        if creating is None:
            creating = asyncio.ensure_future(self._run(self._create, version, point.vector.size))
            self._creating[version] = creating
            creating.add_done_callback(functools.partial(self._created, version))  # runs before any waiter resumes
        return await asyncio.shield(creating)

    def _created(self, version: str, creating: asyncio.Future[_Collection]) -> None:
        del self._creating[version]
        if not creating.cancelled() and creating.exception() is None:
            self._collections[version] = creating.result()

    async def _each(self, fn) -> list:
        """Run fn(shard) for every collection, one after another, off the event loop."""
        return [await self._run(fn, c.shard) for c in list(self._collections.values())]

    # -- operations --------------------------------------------------------------------

    async def upsert(self, point: IndexPoint) -> None:
        collection = await self._collection_for(point)
        check_dimension(collection.dimension, point.vector, point.model_version)
        operation = qe.UpdateOperation.upsert_points([qe.Point(point.id, point.vector.tolist(), point.payload())])
        await self._run(collection.shard.update, operation)

    async def search(self, query: SearchQuery) -> list[Hit]:
        collection = self._collections.get(query.model_version)
        if collection is None:
            return []
        check_dimension(collection.dimension, query.vector, query.model_version)
        request = qe.QueryRequest(
            limit=query.k,
            query=qe.Query.Nearest(query.vector.tolist()),
            filter=qe.Filter(must=filters.search(_Edge, query)),
            with_payload=qe.PayloadSelector.Include([ENTRY_ID, PROMPT]),
            with_vector=False,
            score_threshold=engine_threshold(query.min_similarity),
        )
        scored = await self._run(collection.shard.query, request)
        return to_hits([(p.score, p.payload or {}) for p in scored], query.min_similarity)

    async def _delete_matching(self, conditions: list) -> int:
        def delete(shard: qe.EdgeShard) -> int:
            matching = qe.Filter(must=conditions)
            found = shard.count(qe.CountRequest(exact=True, filter=matching))
            if found:
                shard.update(qe.UpdateOperation.delete_points_by_filter(matching))
            return found

        return sum(await self._each(delete))

    async def delete(self, tenant: str, namespace: str, entry_ids: list[str]) -> int:
        if not entry_ids:
            return 0
        return await self._delete_matching(filters.delete(_Edge, tenant, namespace, entry_ids))

    async def drop_tenant(self, tenant: str) -> int:
        return await self._delete_matching(filters.tenant(_Edge, tenant))

    async def invalidate(self, tenant: str, namespace: str | None, entry_ids: list[str]) -> int:
        return await self._delete_matching(filters.invalidate(_Edge, tenant, namespace, entry_ids))

    async def count(self, tenant: str | None = None, *, include_expired: bool = False) -> int:
        conditions = filters.count(_Edge, tenant, include_expired)
        request = qe.CountRequest(exact=True, filter=qe.Filter(must=conditions) if conditions else None)
        return sum(await self._each(lambda shard: shard.count(request)))

    async def purge_expired(self) -> int:
        def purge(shard: qe.EdgeShard) -> int:
            expired = qe.Filter(must=filters.expired(_Edge))
            found = shard.count(qe.CountRequest(exact=True, filter=expired))
            if found:
                shard.update(qe.UpdateOperation.delete_points_by_filter(expired))
            # The engine has no background optimizer: this is where deleted points (expired,
            # Delete, DropTenant) are vacuumed, once a segment is 20% deleted. A no-op otherwise
            # (~0.1 ms); when it runs, it rewrites the segment (~3 s per 100k points).
            shard.optimize()
            shard.flush()
            return found

        return sum(await self._each(purge))

    async def healthy(self) -> bool:
        if self._closed:
            return False
        with contextlib.suppress(Exception):
            await self._each(lambda shard: shard.info())
            return self._dir.is_dir()
        return False
