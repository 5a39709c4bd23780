"""Misses counted per tenant and sent to the store in batches, not one RPC per miss.

A miss used to cost the gateway and the store one CountMisses call each, as much CPU as the exact
lookup before it; under overload, when every shed lookup is a miss, that is CPU the tier needs.
The tally adds misses in memory and a flusher sends each tenant's sum every `interval_s`, so the
tenant's stats lag by at most that long. Counting fails open: a failed flush drops its counts
(logged), as a failed per-miss call did.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import Counter

from deja.clients import DependencyError, StoreClient
from deja.logs import get_logger

log = get_logger("deja.gateway.misses")

FLUSH_S = 0.1


class MissTally:
    def __init__(self, store: StoreClient, interval_s: float = FLUSH_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._counts: Counter[str] = Counter()
        self._task: asyncio.Task | None = None

    def add(self, tenant: str) -> None:
        self._counts[tenant] += 1
        if self._task is None or self._task.done():  # started on first use, inside the serving loop
            # In a context of its own: the flusher must not carry the first miss's trace forever.
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="deja-miss-tally", context=contextvars.Context())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self) -> None:
        counts, self._counts = self._counts, Counter()
        for tenant, misses in counts.items():
            try:
                await self.store.count_misses(tenant, misses)
            except DependencyError as exc:
                log.debug("miss_count_failed_open", tenant=tenant, misses=misses, error=str(exc))

    async def close(self) -> None:
        """Stop the flusher and send what is left (shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
