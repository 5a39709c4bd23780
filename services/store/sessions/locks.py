"""One archive writer per session: an asyncio lock inside this process, then a Redis lease so
that several store processes sharing one archive volume also take turns."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from deja.errors import Unavailable
from services.store.sessions.hot import HotWindow
from services.store.sessions.records import Ref


class SessionBusy(Unavailable):
    """Another writer held the session's lease for longer than we were willing to wait (UNAVAILABLE)."""


class SessionLocks:
    def __init__(self, hot: HotWindow, *, lease_s: float = 30.0, wait_s: float = 10.0) -> None:
        self._hot = hot
        self._lease_ms = int(lease_s * 1000)
        self._wait_s = wait_s
        self._local: dict[Ref, tuple[asyncio.Lock, int]] = {}  # lock, holders + waiters

    @contextlib.asynccontextmanager
    async def hold(self, ref: Ref, wait_s: float | None = None) -> AsyncIterator[None]:
        """Raises SessionBusy if the lease is not ours within `wait_s` (default: the configured wait)."""
        lock, users = self._local.get(ref, (None, 0))
        lock = lock or asyncio.Lock()
        self._local[ref] = (lock, users + 1)
        try:
            async with lock:
                token = await self._lease(ref, self._wait_s if wait_s is None else wait_s)
                try:
                    yield
                finally:
                    await self._hot.unlock(ref, token)
        finally:
            lock, users = self._local[ref]
            if users == 1:
                del self._local[ref]
            else:
                self._local[ref] = (lock, users - 1)

    async def _lease(self, ref: Ref, wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        pause = 0.005
        while True:
            token = await self._hot.try_lock(ref, self._lease_ms)
            if token is not None:
                return token
            if time.monotonic() > deadline:
                raise SessionBusy(f"session {ref.key} is being archived by another process")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
