"""The scale-down hold and the queues (`hold_backlog`): with 'release' the workers asked only to
drain a queue go once it drains, while the rest of the need is held as before. Pure: the hold by
itself, and the planner on observations by hand."""

from __future__ import annotations

import pydantic
import pytest

from scaler.planner.config import PlannerConfig
from scaler.planner.constraints import DownHold
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Decision, Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0


def test_the_hold_keeps_the_lasting_need_and_lets_the_rest_go():
    held, released = DownHold(60.0, 0.5), DownHold(60.0, 0.5)
    for t in range(0, 65, 5):  # a whole hold period at a need of 2
        held.apply(float(t), 2, 2)
        released.apply(float(t), 2, 2, lasting=2)
    assert held.apply(65.0, 2, 8) == 8 and released.apply(65.0, 2, 8, lasting=3) == 8  # a queue: both rise
    # the queue drained: the need is 3 again
    assert held.apply(70.0, 8, 3) == 8  # held for the whole period
    assert released.apply(70.0, 8, 3, lasting=3) == 4  # half of it per decision
    assert released.apply(75.0, 4, 3, lasting=3) == 3
    assert released.apply(80.0, 3, 2, lasting=2) == 3  # the lasting need of 3 is held


def test_without_a_lasting_need_the_hold_is_as_before():
    a, b = DownHold(10.0, 0.25), DownHold(10.0, 0.25)
    seq = [(0.0, 8, 1), (5.0, 8, 1), (10.0, 8, 1), (15.0, 6, 5), (20.0, 6, 1)]
    assert [a.apply(t, c, n) for t, c, n in seq] == [b.apply(t, c, n, lasting=None) for t, c, n in seq]


def obs(t: float, n: int, prefill: PoolObservation, decode: PoolObservation) -> Observation:
    return Observation(t, TrafficWindow(STEP, n, 2000.0, 100.0, 100.0, 10.0), prefill, decode)


def run(windows, **settings) -> list[Decision]:
    """Decisions on (requests in 5 s, prefill pool, decode pool) windows, the pools running what
    the planner last asked for; 60 s start-up, 60 s hold."""
    p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, scale_down_hold_s=60.0, **settings))
    out, pre, dec = [], 1, 1
    for k, (n, pq, dq) in enumerate(windows, 1):
        d = p.decide(obs(k * STEP, n, PoolObservation(active=pre, queued_tokens=pq),
                         PoolObservation(active=dec, active_tokens=20_000 * dec, queued_tokens=dq)))
        out.append(d)
        pre, dec = d.target_prefill, d.target_decode
    return out


QUIET = [(50, 0, 0)] * 40  # 10 req/s for 200 s


def test_prefill_workers_asked_for_a_queue_go_once_it_drains():
    windows = QUIET + [(50, 15_000_000, 0)] + [(50, 0, 0)] * 4
    held, released = run(windows), run(windows, hold_backlog="release")
    quiet = held[len(QUIET) - 1].target_prefill
    assert held[len(QUIET)].target_prefill == released[len(QUIET)].target_prefill >= quiet + 8
    assert held[-1].target_prefill == held[len(QUIET)].target_prefill  # the default holds them
    assert released[-1].target_prefill < released[len(QUIET)].target_prefill / 2
    assert released[-1].target_prefill >= quiet  # never below the need without the queue


def test_decode_workers_asked_for_waiting_kv_go_once_it_drains():
    windows = QUIET + [(50, 0, 5_000_000)] + [(50, 0, 0)] * 4
    held, released = run(windows), run(windows, hold_backlog="release")
    quiet = held[len(QUIET) - 1].target_decode
    assert held[len(QUIET)].target_decode >= quiet + 3
    assert held[-1].target_decode == held[len(QUIET)].target_decode
    assert quiet <= released[-1].target_decode < released[len(QUIET)].target_decode


def test_load_that_rose_is_held_whatever_the_queue():
    windows = QUIET + [(500, 0, 0)] * 6 + [(50, 0, 0)] * 4  # 100 req/s for 30 s, no queue
    held, released = run(windows), run(windows, hold_backlog="release")
    assert [d.target_prefill for d in held] == [d.target_prefill for d in released]
    assert released[-1].target_prefill > released[len(QUIET) - 1].target_prefill


def test_hold_backlog_is_validated():
    with pytest.raises(pydantic.ValidationError, match=r"hold_backlog\n.*'hold' or 'release'"):
        PlannerConfig(hold_backlog="drop")
