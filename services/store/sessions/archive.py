"""The session archive: one file per session, always written whole and atomically.

File layout (integers little-endian):

    b"DEJASES1"      magic and format version
    u32              length H of the header
    H bytes          header as JSON: tenant, session id, created, updated, turns... (no decompression needed)
    body_bytes       one zstandard frame: the archived messages as JSON lines, oldest first
    vector_bytes     float16 [turns, vector_dim]: each message's embedding; an all-zero row = not embedded yet

A write goes to a temporary file in the same directory, is fsynced, renamed over the old file,
and the directory is fsynced: after a crash there is the old file or the new one, never a mix.
Callers serialise writes per session (`locks`); readers need no lock because rename is atomic.
A file that cannot be parsed is moved aside (`*.corrupt-<ms>`) and reported, never half-read.
Decoded sessions are kept in a small LRU keyed by the file's identity (inode, size, mtime), so
reading an unchanged archive again costs one open and fstat, not a decompress and a parse.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import orjson
import zstandard

from deja.logs import get_logger
from services.store.sessions.records import Message

log = get_logger("deja.store.sessions")

MAGIC = b"DEJASES1"
SUFFIX = ".session"
_PREFIX = struct.Struct("<8sI")
_STALE_TEMP_S = 3600  # a temporary file this old belongs to a write that crashed


@dataclass(frozen=True)
class Header:
    tenant: str
    session_id: str
    created_at_ms: int
    updated_at_ms: int  # the session's last append when this file was written
    turns: int  # messages in this file
    last_seq: int  # seq of the newest of them
    written_at_ms: int = 0
    raw_bytes: int = 0  # the messages uncompressed
    body_bytes: int = 0
    vector_dim: int = 0
    vector_model: str = ""  # embedder model version of the vectors
    vector_bytes: int = 0
    unembedded: int = 0  # messages whose vector is still missing


@dataclass
class Archived:
    header: Header
    messages: list[Message]
    vectors: np.ndarray  # float16 [len(messages), header.vector_dim]


class _Decoded:
    """LRU of decoded archives, bounded by their uncompressed size; safe across reader threads."""

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._items: OrderedDict[Path, tuple[tuple, Archived]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, identity: tuple) -> Archived | None:
        with self._lock:
            item = self._items.get(path)
            if item is None or item[0] != identity:
                return None
            self._items.move_to_end(path)
            found = item[1]
        # A new wrapper: callers may swap its header or vectors without touching the cached one.
        return Archived(found.header, found.messages, found.vectors)

    def put(self, path: Path, identity: tuple, archived: Archived) -> None:
        size = archived.header.raw_bytes + archived.vectors.nbytes
        if size > self._budget // 4:
            return
        with self._lock:
            self._evict(path)
            self._items[path] = (identity, archived)
            self._used += size
            while self._used > self._budget:
                self._evict(next(iter(self._items)))

    def forget(self, path: Path) -> None:
        with self._lock:
            self._evict(path)

    def _evict(self, path: Path) -> None:
        item = self._items.pop(path, None)
        if item is not None:
            self._used -= item[1].header.raw_bytes + item[1].vectors.nbytes


class Archive:
    def __init__(self, root: Path, level: int = 9, cache_bytes: int = 64 << 20) -> None:
        self.root = root
        self.level = level
        self._decoded = _Decoded(cache_bytes)
        root.mkdir(parents=True, exist_ok=True)

    def path(self, tenant: str, key: str) -> Path:
        return self.root / tenant / f"{key}{SUFFIX}"

    # -- reading -------------------------------------------------------------------------

    def header(self, tenant: str, key: str) -> Header | None:
        path = self.path(tenant, key)
        try:
            with path.open("rb") as f:
                return self._header(f)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            self._quarantine(path, exc)
            return None

    def read(self, tenant: str, key: str) -> Archived | None:
        path = self.path(tenant, key)
        try:
            with path.open("rb") as f:
                stat = os.fstat(f.fileno())
                identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                cached = self._decoded.get(path, identity)
                if cached is not None:
                    return cached
                header = self._header(f)
                body = f.read(header.body_bytes)
                raw_vectors = f.read(header.vector_bytes)
            raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=header.raw_bytes)
            messages = [Message.from_line(line) for line in raw.splitlines()]
            vectors = np.frombuffer(raw_vectors, dtype="<f2").reshape(len(messages), header.vector_dim)
            if len(messages) != header.turns or len(body) != header.body_bytes:
                raise ValueError("file shorter than its header says")
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, struct.error, zstandard.ZstdError) as exc:
            self._quarantine(path, exc)
            return None
        archived = Archived(header, messages, vectors)
        self._decoded.put(path, identity, archived)
        return Archived(header, messages, vectors)

    @staticmethod
    def _header(f) -> Header:
        magic, length = _PREFIX.unpack(f.read(_PREFIX.size))
        if magic != MAGIC:
            raise ValueError("not a Deja session archive")
        return Header(**orjson.loads(f.read(length)))

    def _quarantine(self, path: Path, exc: Exception) -> None:
        self._decoded.forget(path)
        aside = path.with_name(f"{path.name}.corrupt-{time.time_ns() // 1_000_000}")
        log.error("session_archive_corrupt", path=str(path), moved_to=aside.name, error=repr(exc))
        try:
            path.rename(aside)
        except FileNotFoundError:
            pass

    # -- writing -------------------------------------------------------------------------

    def write(self, key: str, archived: Archived) -> int:
        """Replace the session's file with `archived`; returns the file's size in bytes."""
        raw = b"".join(m.line() for m in archived.messages)
        body = zstandard.ZstdCompressor(level=self.level).compress(raw)
        vectors = np.ascontiguousarray(archived.vectors, dtype="<f2")
        missing = int((~vectors.any(axis=1)).sum()) if vectors.shape[1] else len(archived.messages)
        header = replace(
            archived.header,
            turns=len(archived.messages),
            last_seq=archived.messages[-1].seq if archived.messages else 0,
            written_at_ms=time.time_ns() // 1_000_000,
            raw_bytes=len(raw),
            body_bytes=len(body),
            vector_dim=vectors.shape[1],
            vector_bytes=vectors.nbytes,
            unembedded=missing,
        )
        encoded = orjson.dumps(asdict(header))
        data = _PREFIX.pack(MAGIC, len(encoded)) + encoded + body + vectors.tobytes()
        path = self.path(header.tenant, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with temp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
            self._decoded.forget(path)
        _fsync_dir(path.parent)
        archived.header = header
        return len(data)

    def delete(self, tenant: str, key: str) -> bool:
        path = self.path(tenant, key)
        self._decoded.forget(path)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    # -- walking -------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[str, str]]:
        """(tenant, key) of every archived session; removes temporary files left by crashed writes."""
        now = time.time()
        for tenant_dir in self.root.iterdir() if self.root.is_dir() else ():
            if not tenant_dir.is_dir():
                continue
            for entry in os.scandir(tenant_dir):
                if entry.name.endswith(SUFFIX):
                    yield tenant_dir.name, entry.name[: -len(SUFFIX)]
                elif ".tmp-" in entry.name and now - entry.stat().st_mtime > _STALE_TEMP_S:
                    Path(entry.path).unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
