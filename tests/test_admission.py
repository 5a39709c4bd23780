"""Admission to the semantic tier: the adaptive limit and event-loop lag shedding (no processes)."""

from __future__ import annotations

import asyncio
import time

from services.gateway.admission import Admission, LoopLag


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
