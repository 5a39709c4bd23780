"""Session memory: appends, reads, and the moves between the hot window and the archive.

Invariants that make it safe without one big lock:
- A session's messages are numbered 1, 2, 3... by the hot window's append script.
- The archive always holds a prefix of the session (seq 1..last_seq); messages move there
  oldest first, and leave Redis only after the archive file holding them has been renamed
  into place. Every move runs under the session's lock and re-reads its state inside it.
- Readers take the hot snapshot first and the archive second, then merge by seq: a move
  that happens in between only adds to the archive what the snapshot still had.
- A session with no hot state (new, or archived while idle) is seeded from its archive
  header (last seq, created), so numbering carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import numpy as np

from deja.errors import InvalidRequest
from deja.logs import get_logger
from deja.v1 import sessions_pb2
from services.store.sessions.archive import Archive, Archived, Header
from services.store.sessions.hot import Appended, HotWindow, Snapshot
from services.store.sessions.locks import SessionBusy, SessionLocks
from services.store.sessions.records import ROLES, Message, Ref
from services.store.sessions.relevance import TurnEmbedder, missing_rows, rank
from services.store.sessions.settings import SessionSettings

log = get_logger("deja.store.sessions")

MAX_APPEND = 100  # messages in one Append
# Replies stay well under gRPC's default 4 MiB message limit, however long the messages are.
PAGE_BYTES = 2 << 20  # a Get page stops growing past this much content (UTF-8)
RECENT_BYTES = 2 << 20  # Recent / Context drop their oldest messages past this
RELEVANT_BYTES = 1 << 20  # Context drops its weakest matches past this
FILL_LIMIT = 256  # most missing vectors filled in one archive write
MAINTENANCE_WAIT_S = 0.5  # the sweep skips a session whose lease is held (till its next round)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def merge(archived: Archived | None, snapshot: Snapshot) -> list[Message]:
    """The archive's messages, then the hot ones it does not hold yet."""
    if archived is None:
        return snapshot.messages
    done = archived.header.last_seq
    return [*archived.messages, *(m for m in snapshot.messages if m.seq > done)]


def within(messages: list[Message], budget: int) -> list[Message]:
    """The leading messages whose contents fit in `budget` bytes (callers order them by what to keep)."""
    kept, size = [], 0
    for message in messages:
        size += len(message.content.encode())
        if size > budget:
            break
        kept.append(message)
    return kept


def exchange(messages: list[Message], row: int) -> list[int]:
    """The rows of the question-and-answer exchange `row` belongs to: a matching question is
    little use without its answer, nor an answer without what it answers."""
    role = messages[row].role
    if role == "user" and row + 1 < len(messages) and messages[row + 1].role == "assistant":
        return [row, row + 1]
    if role == "assistant" and row > 0 and messages[row - 1].role == "user":
        return [row - 1, row]
    return [row]


def _newest(messages: list[Message], n: int) -> list[Message]:
    """The last `n` messages, fewer if they would exceed RECENT_BYTES; oldest first."""
    return within(messages[-n:][::-1], RECENT_BYTES)[::-1]


@dataclass(frozen=True)
class Context:
    recent: list[Message]
    relevant: list[tuple[Message, float]]
    relevant_available: bool


class SessionMemory:
    def __init__(self, hot: HotWindow, archive: Archive, embedder: TurnEmbedder, settings: SessionSettings) -> None:
        self.hot = hot
        self.archive = archive
        self.embedder = embedder
        self.settings = settings
        self.locks = SessionLocks(hot)
        self._moves: dict[Ref, asyncio.Task] = {}

    # -- writing ---------------------------------------------------------------------------

    def _record(self, message: sessions_pb2.SessionMessage, now: int) -> Message:
        if message.role not in ROLES:
            raise InvalidRequest(f"messages[].role must be one of {', '.join(sorted(ROLES))}")
        limit = self.settings.max_message_chars
        content = message.content[:limit]
        return Message(0, message.role, content, message.created_at_ms or now, len(message.content) > limit)

    async def append(self, ref: Ref, messages: list[sessions_pb2.SessionMessage]) -> Appended:
        if not 1 <= len(messages) <= MAX_APPEND:
            raise InvalidRequest(f"messages: 1 to {MAX_APPEND} per append")
        now = now_ms()
        records = [self._record(m, now) for m in messages]
        done = await self.hot.append(ref, records, now)
        if done is None:  # new, or coming back from the archive: carry on its numbering
            header = await asyncio.to_thread(self.archive.header, ref.tenant, ref.key)
            seed = (header.last_seq, header.created_at_ms) if header else (0, now)
            await self.hot.register_tenant(ref.tenant)
            done = await self.hot.append(ref, records, now, seed)
        if done.hot > self.settings.window + self.settings.spill_batch:
            self._move_soon(ref)
        return done

    def _move_soon(self, ref: Ref) -> None:
        """Spill the overflow in the background: the append has answered already."""
        if ref in self._moves:
            return
        task = asyncio.create_task(self._spill(ref))
        self._moves[ref] = task
        task.add_done_callback(lambda _: self._moves.pop(ref, None))

    async def _spill(self, ref: Ref) -> None:
        try:
            while await self.move_to_archive(ref) > self.settings.window + self.settings.spill_batch:
                pass
        except Exception as exc:  # retried by the next append over the limit, or the idle sweep
            log.warning("session_spill_failed", session=ref.key, error=repr(exc))

    async def move_to_archive(
        self, ref: Ref, *, whole: bool = False, idle_before_ms: int | None = None, wait_s: float | None = None
    ) -> int:
        """Move the messages beyond the window (all of them with `whole`) to the archive.
        With `idle_before_ms`, only if the session has had no append since. Returns how many stay hot."""
        async with self.locks.hold(ref, wait_s):
            snapshot = await self.hot.snapshot(ref)
            if not snapshot.exists:
                return 0
            if idle_before_ms is not None and snapshot.updated_at_ms > idle_before_ms:
                return len(snapshot.messages)
            archived = await asyncio.to_thread(self.archive.read, ref.tenant, ref.key)
            done = archived.header.last_seq if archived else 0
            pending = [m for m in snapshot.messages if m.seq > done]
            keep = 0 if whole else self.settings.window
            move = pending[: max(0, len(pending) - keep)]
            if move:
                await self._write(ref, snapshot, archived, move)
                done = move[-1].seq
            return await self.hot.release(ref, done, drop=whole)

    async def _write(self, ref: Ref, snapshot: Snapshot, archived: Archived | None, move: list[Message]) -> None:
        if archived is None:
            header = Header(ref.tenant, ref.session_id, snapshot.created_at_ms, snapshot.updated_at_ms, 0, 0)
            archived = Archived(header, [], np.zeros((0, 0), dtype=np.float16))
        old = archived.vectors
        vectors = np.concatenate([old, np.zeros((len(move), old.shape[1]), dtype=np.float16)])
        header = replace(archived.header, updated_at_ms=snapshot.updated_at_ms)
        grown = Archived(header, [*archived.messages, *move], vectors)
        await self._fill_vectors(grown, FILL_LIMIT + len(move))
        await asyncio.to_thread(self.archive.write, ref.key, grown)

    async def _fill_vectors(self, archived: Archived, limit: int) -> bool | None:
        """Embed up to `limit` archived messages that have no vector yet (newest first).
        True: some were filled; False: none was missing; None: the embedder did not answer."""
        missing = missing_rows(archived.vectors, len(archived.messages))[-limit:]
        if len(missing) == 0:
            return False
        embedded = await self.embedder.embed([archived.messages[i].content for i in missing])
        if embedded is None:
            return None
        vectors, model = archived.vectors, archived.header.vector_model
        if model != embedded.model_version or vectors.shape[1] != embedded.vectors.shape[1]:
            # A new embedding model: old vectors are not comparable with new ones; start over.
            vectors = np.zeros((len(archived.messages), embedded.vectors.shape[1]), dtype=np.float16)
            model = embedded.model_version
        vectors = vectors.copy()
        vectors[missing] = embedded.vectors.astype(np.float16)
        archived.vectors = vectors
        archived.header = replace(archived.header, vector_model=model)
        return True

    async def delete(self, ref: Ref) -> bool:
        async with self.locks.hold(ref):
            in_redis = await self.hot.delete(ref)
            on_disk = await asyncio.to_thread(self.archive.delete, ref.tenant, ref.key)
        return in_redis or on_disk

    # -- reading ---------------------------------------------------------------------------

    async def _read(self, ref: Ref, newest: int = 0) -> tuple[Snapshot, Archived | None] | None:
        """Hot first, archive second (see the module doc); the archive only when `newest` needs it."""
        snapshot = await self.hot.snapshot(ref, newest)
        whole_in_hot = snapshot.messages and snapshot.messages[0].seq == 1
        if newest and (len(snapshot.messages) >= newest or whole_in_hot):
            return snapshot, None
        archived = await asyncio.to_thread(self.archive.read, ref.tenant, ref.key)
        if not snapshot.exists and archived is None:
            return None
        return snapshot, archived

    async def get(self, ref: Ref, after_seq: int = 0) -> tuple[sessions_pb2.SessionInfo, list[Message], bool] | None:
        """Session info, the messages after `after_seq` up to about PAGE_BYTES, and whether more follow."""
        read = await self._read(ref)
        if read is None:
            return None
        snapshot, archived = read
        messages = [m for m in merge(archived, snapshot) if m.seq > after_seq]
        page, size = [], 0
        for message in messages:
            size += len(message.content.encode())
            if page and size > PAGE_BYTES:
                break
            page.append(message)
        header = archived.header if archived else None
        info = sessions_pb2.SessionInfo(
            session_id=ref.session_id,
            created_at_ms=snapshot.created_at_ms or (header.created_at_ms if header else 0),
            updated_at_ms=snapshot.updated_at_ms or (header.updated_at_ms if header else 0),
            turns=max(snapshot.last_seq, header.last_seq if header else 0),
            hot=len(snapshot.messages),
            archived=header.turns if header else 0,
        )
        return info, page, len(page) < len(messages)

    async def recent(self, ref: Ref, n: int) -> list[Message] | None:
        read = await self._read(ref, n)
        return None if read is None else _newest(merge(read[1], read[0]), n)

    async def context(self, ref: Ref, query: str, n: int, k: int) -> Context | None:
        read = await self._read(ref)
        if read is None:
            return None
        snapshot, archived = read
        recent = _newest(merge(archived, snapshot), n)
        if archived is None or k == 0:
            return Context(recent, [], True)  # nothing archived: nothing to rank
        if archived.header.vector_dim == 0:
            return Context(recent, [], False)  # archived while the embedder was down; the sweep fills vectors in
        embedded = await self.embedder.embed([query])
        if embedded is None or embedded.model_version != archived.header.vector_model:
            return Context(recent, [], False)  # down, or a new model whose vectors the sweep is still filling in
        shown = {m.seq for m in recent}
        skip = np.array([m.seq in shown for m in archived.messages], dtype=bool)
        # k exchanges at most: 2k matches cover them even when question and answer both match.
        best = rank(archived.vectors, embedded.vectors[0], k=2 * k, min_similarity=self.settings.min_similarity,
                    skip=skip)  # fmt: skip
        picked: dict[int, float] = {}  # row -> score of the match that brought it
        exchanges = 0
        for row, score in best:
            if row in picked:
                continue
            if exchanges == k:
                break
            exchanges += 1
            for member in exchange(archived.messages, row):
                if not skip[member]:
                    picked.setdefault(member, score)
        ordered = sorted(picked.items(), key=lambda item: (-item[1], item[0]))  # best first, each exchange in order
        kept = within([archived.messages[row] for row, _ in ordered], RELEVANT_BYTES)
        return Context(recent, [(m, score) for m, (_, score) in zip(kept, ordered, strict=False)], True)

    # -- maintenance -------------------------------------------------------------------------

    async def archive_idle(self, now: int) -> int:
        """Move every session idle for DEJA_SESSION_IDLE_AFTER_S wholly to the archive; returns how many moved."""
        cutoff = now - int(self.settings.idle_after_s * 1000)
        moved = 0
        async for tenant in self.hot.tenants():
            for key in await self.hot.idle(tenant, cutoff):
                session_id = await self.hot.session_id(tenant, key)
                if session_id is None:  # its hot keys expired or were deleted
                    await self.hot.forget(tenant, key)
                    continue
                try:
                    left = await self.move_to_archive(
                        Ref(tenant, session_id), whole=True, idle_before_ms=cutoff, wait_s=MAINTENANCE_WAIT_S
                    )
                except SessionBusy:
                    continue  # being moved elsewhere, or a crashed writer's lease: next round
                moved += left == 0
        return moved

    async def purge_and_fill(self, now: int) -> tuple[int, int]:
        """Purge archived sessions idle past the retention age; fill in missing turn vectors.
        Returns (sessions purged, sessions given vectors)."""
        retention_ms = self.settings.retention_s * 1000
        purged = filled = 0
        embedder_up = True
        for tenant, key in await asyncio.to_thread(lambda: list(self.archive.scan())):
            header = await asyncio.to_thread(self.archive.header, tenant, key)
            if header is None:
                continue
            ref = Ref(tenant, header.session_id)
            try:
                if retention_ms and header.updated_at_ms < now - retention_ms:
                    purged += await self._purge(ref, now - retention_ms)
                elif header.unembedded and embedder_up:
                    outcome = await self._fill(ref)
                    filled += bool(outcome)
                    embedder_up = outcome is not None  # down: leave the rest for the next round
            except SessionBusy:
                continue
        return purged, filled

    async def _fill(self, ref: Ref) -> bool | None:
        async with self.locks.hold(ref, MAINTENANCE_WAIT_S):
            archived = await asyncio.to_thread(self.archive.read, ref.tenant, ref.key)
            outcome = await self._fill_vectors(archived, FILL_LIMIT) if archived else False
            if outcome:
                await asyncio.to_thread(self.archive.write, ref.key, archived)
            return outcome

    async def _purge(self, ref: Ref, cutoff: int) -> bool:
        async with self.locks.hold(ref, MAINTENANCE_WAIT_S):
            if (await self.hot.snapshot(ref, 1)).exists:
                return False  # active again: its archive is part of a live session
            header = await asyncio.to_thread(self.archive.header, ref.tenant, ref.key)
            if header is None or header.updated_at_ms >= cutoff:
                return False
            return await asyncio.to_thread(self.archive.delete, ref.tenant, ref.key)

    async def maintain(self) -> None:
        """The background task: every DEJA_SESSION_PURGE_INTERVAL_S, archive idle sessions, then purge and fill."""
        while True:
            await asyncio.sleep(self.settings.purge_interval_s)
            try:
                archived = await self.archive_idle(now_ms())
                purged, filled = await self.purge_and_fill(now_ms())
            except Exception as exc:  # Redis or disk trouble: try again next round
                log.warning("session_maintenance_failed", error=repr(exc))
                continue
            if archived or purged or filled:
                log.info("session_maintenance", archived_idle=archived, purged=purged, vectors_filled=filled)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let background moves finish (on shutdown)."""
        if self._moves:
            await asyncio.wait(list(self._moves.values()), timeout=timeout_s)
