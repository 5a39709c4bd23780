"""Admission to the semantic tier: the adaptive limit, event-loop lag shedding, and the index writes a
saturated tier skips (no processes; a client that is called fails against a port nobody serves)."""

from __future__ import annotations

import asyncio
import time

import pytest

from deja.clients import DependencyError, EmbedderClient, SemanticIndexClient
from deja.v1 import common_pb2
from services.gateway import observe
from services.gateway.admission import Admission, LoopLag
from services.gateway.semantic import Lookup, SemanticTier
from services.gateway.semantic_key import SemanticParts
from tools.cluster import free_port


def fill(admission: Admission) -> int:
    admitted = 0
    while admission.admit() == "":
        admitted += 1
    return admitted


def test_lookups_past_the_limit_are_shed_and_a_finished_one_frees_its_place():
    admission = Admission(3, target_s=0.1)
    assert fill(admission) == 3
    assert admission.admit() == "limit"
    admission.done(0.01)
    assert admission.admit() == ""


def test_slow_lookups_cut_the_limit_once_per_target_interval_down_to_the_floor():
    admission = Admission(16, target_s=0.1, min_inflight=4)
    fill(admission)
    for _ in range(16):  # one slow burst, all finishing at the same moment: one cut
        admission.done(0.5, now=100.0)
    assert admission.limit == 16 * 0.9
    now = 100.0
    for _ in range(60):  # slow for a long time: down to the floor, never below
        now += 0.1
        admission.inflight += 1
        admission.done(0.5, now=now)
    assert admission.limit == 4
    assert fill(admission) == 4


def test_fast_lookups_raise_the_limit_back_to_the_ceiling_and_no_further():
    admission = Admission(16, target_s=0.1, min_inflight=4)
    admission.limit = 4.0
    for _ in range(200):
        admission.inflight += 1
        admission.done(0.01)
    assert admission.limit == 16
    assert Admission(16, target_s=0.1).limit == 16  # starts open: an idle gateway admits up to the ceiling


def test_a_ceiling_under_the_floor_wins():
    admission = Admission(1, target_s=0.1, min_inflight=4)
    assert fill(admission) == 1
    admission.done(1.0, now=50.0)
    assert admission.limit == 1


def test_a_lagging_event_loop_sheds_every_lookup_until_it_catches_up():
    lag = LoopLag()
    admission = Admission(16, target_s=0.1, max_lag_s=0.05, lag=lag)
    lag.sample(0.2)  # a rise counts at once
    assert admission.admit() == "lag"
    lag.sample(0.0)  # a fall is smoothed: one quiet tick is not enough
    assert admission.admit() == "lag"
    for _ in range(10):
        lag.sample(0.0)
    assert admission.admit() == ""
    assert Admission(16, target_s=0.1, max_lag_s=0.0, lag=LoopLag()).admit() == ""  # 0: lag never sheds


def test_the_timer_sees_a_loop_blocked_by_work():
    async def main() -> tuple[float, float]:
        lag = LoopLag(tick_s=0.005)
        lag.start()
        await asyncio.sleep(0.05)
        idle = lag.lag_s
        time.sleep(0.1)  # noqa: ASYNC251 - CPU-bound work holding the loop, as a saturated gateway does
        busy = 0.0
        for _ in range(20):  # the late tick is seen on the next turns of the loop
            await asyncio.sleep(0.001)
            busy = max(busy, lag.lag_s)
        await lag.stop()
        return idle, busy

    idle, busy = asyncio.run(main())
    assert idle < 0.05
    assert busy >= 0.08


def test_saturated_says_what_admit_would_without_taking_a_slot():
    admission = Admission(2, target_s=0.1, min_inflight=1)
    assert not admission.saturated()
    fill(admission)
    assert admission.saturated() and admission.inflight == 2
    admission.done(0.01)
    assert not admission.saturated() and admission.inflight == 1
    lag = LoopLag()
    lagging = Admission(16, target_s=0.1, max_lag_s=0.05, lag=lag)
    lag.sample(0.2)
    assert lagging.saturated() and lagging.inflight == 0


# -- what a miss's answer does after a lookup that had no room --------------------------------------


def tier_with_dead_clients(admission: Admission):
    """A semantic tier whose every client points at a port nobody serves: a call that is made fails."""
    nowhere = f"127.0.0.1:{free_port()}"
    return SemanticTier(
        embedder=EmbedderClient(nowhere, timeout_s=0.2), index=SemanticIndexClient(nowhere, timeout_s=0.2),
        verifier=None, store=None, k=5, min_similarity=0.7, threshold=0.5, timeout_s=0.2, evidence=None,
        max_error=0.01, min_yes=0.25, explore_rate=0.0, admission=admission,
    )  # fmt: skip


def skipped(reason: str) -> float:
    return observe.SEMANTIC_INDEX_SKIPPED.labels(reason)._value.get()


def test_an_answer_is_not_indexed_after_a_shed_or_timed_out_lookup_or_while_lookups_are_at_the_limit():
    async def scenario() -> None:
        admission = Admission(2, target_s=0.1, min_inflight=1)
        tier = tier_with_dead_clients(admission)
        scope, parts = common_pb2.Scope(tenant="t" * 16), SemanticParts("How do I center a div?", b"\0" * 16)
        try:
            for lookup, reason in ((Lookup(shed=True), "shed"), (Lookup(timed_out=True), "timed_out")):
                before = skipped(reason)
                await tier.remember(scope, parts, lookup, "ab" * 32, 0)  # returns without a call
                assert skipped(reason) == before + 1
            fill(admission)
            before = skipped("saturated")
            await tier.remember(scope, parts, Lookup(), "ab" * 32, 0)  # no vector and no room: skipped
            assert skipped("saturated") == before + 1
            admission.done(0.01)
            with pytest.raises(DependencyError):  # with room, it embeds (here: a dead embedder, so it fails)
                await tier.remember(scope, parts, Lookup(), "ab" * 32, 0)
        finally:
            await tier.embedder.close()
            await tier.index.close()

    asyncio.run(scenario())
