"""Admission to the semantic tier: look a request up, or shed the lookup at once as a plain miss.

A semantic lookup costs CPU here (three or four gRPC calls) and in the embedder and verifier.
Past what the machine serves, more lookups only queue, run past the budget and go upstream late,
and the queueing slows exact hits too. So a lookup past capacity is shed before it starts: the
request goes to the provider at once (no client error) and its answer is stored but not indexed.
Two signals decide, both cheap to read on every request:

- An adaptive concurrency limit (AIMD). Each lookup slower than the target latency cuts the
  limit by a tenth (at most once per target interval, so one slow burst is one cut); each faster
  one adds 1/limit, about one per limit's worth of fast lookups. It stays between a floor and
  DEJA_SEMANTIC_MAX_INFLIGHT. A fixed limit is either too high for a busy machine or too low
  for an idle one; this one follows what the tier serves now.
- The gateway's event-loop lag: how late a 10 ms timer fires. When this process is short of
  CPU, every request waits behind every other; shedding the costly kind first keeps exact hits
  and misses fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import Gauge

LIMIT = Gauge("deja_semantic_limit", "semantic lookups admitted at once now (the adaptive limit)")
LAG = Gauge("deja_gateway_loop_lag_seconds", "event-loop lag of the gateway (smoothed), what lag shedding reads")

TICK_S = 0.010
BACKOFF = 0.9  # multiplicative cut for a slow lookup


class LoopLag:
    """The event loop's lag, sampled by a timer: a rise is immediate, a fall is smoothed (so one
    quiet tick does not reopen the tier in the middle of a burst)."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self.lag_s = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="deja-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def sample(self, lag_s: float) -> None:
        self.lag_s = lag_s if lag_s > self.lag_s else 0.7 * self.lag_s + 0.3 * lag_s
        LAG.set(self.lag_s)

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.tick_s)
            self.sample(max(0.0, time.perf_counter() - started - self.tick_s))


class Admission:
    """Whether a semantic lookup may start now; `done` reports how long an admitted one took."""

    def __init__(
        self, max_inflight: int, *, target_s: float, min_inflight: int = 4, max_lag_s: float = 0.0,
        lag: LoopLag | None = None,
    ) -> None:  # fmt: skip
        self.max_inflight = max_inflight
        self.min_inflight = min(min_inflight, max_inflight)
        self.target_s = target_s
        self.max_lag_s = max_lag_s  # 0: lag is not a reason to shed
        self.lag = lag
        self.limit = float(max_inflight)
        self.inflight = 0
        self._last_cut = 0.0
        LIMIT.set(self.limit)

    def admit(self) -> str:
        """ "" when the lookup may start (and `done` must follow), else why it is shed: "limit" or "lag"."""
        reason = self._shed_reason()
        if not reason:
            self.inflight += 1
        return reason

    def saturated(self) -> bool:
        """Whether a lookup would be shed now; for work that may simply be skipped (a background
        embed to index a miss's answer), so it takes no slot and teaches the limit nothing."""
        return bool(self._shed_reason())

    def _shed_reason(self) -> str:
        if self.lag is not None and self.max_lag_s and self.lag.lag_s > self.max_lag_s:
            return "lag"
        if self.inflight >= int(self.limit):
            return "limit"
        return ""

    def done(self, seconds: float, now: float | None = None) -> None:
        self.inflight -= 1
        now = time.monotonic() if now is None else now
        if seconds > self.target_s:
            if now - self._last_cut >= self.target_s:
                self.limit = max(float(self.min_inflight), self.limit * BACKOFF)
                self._last_cut = now
        else:
            self.limit = min(float(self.max_inflight), self.limit + 1.0 / self.limit)
        LIMIT.set(self.limit)
