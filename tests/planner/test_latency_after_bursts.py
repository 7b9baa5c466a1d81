"""The mean-latency headroom after a burst (`latency_in_bursts: skip_drain`): slow first tokens
while the queue a burst left still drains say the burst came faster than workers start, not that
the profile is optimistic, for at most one start-up and the backlog horizon after the load was
last above the running fleet. Pure: observations by hand, with the bundled profile."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0
ISL = 8000.0
QUEUE = 2_000_000  # prompt tokens: about 40 s of one worker


def planner(mode: str) -> PredictivePlanner:
    return PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, latency_in_bursts=mode))


def decide(p: PredictivePlanner, k: int, rate: float, queued: int) -> float:
    """The prefill headroom after the k-th window (one worker running, slow first tokens)."""
    n = int(rate * STEP)
    traffic = TrafficWindow(STEP, n, ISL if n else None, 50.0 if n else None, 3000.0 if n else None,
                            10.0 if n else None)
    d = p.decide(Observation(k * STEP, traffic, PoolObservation(active=1, queued_tokens=queued),
                             PoolObservation(active=2)))
    return d.details.prefill_correction


def burst_then(p: PredictivePlanner, windows: list[tuple[float, int]]) -> list[float]:
    """A 5 s burst one worker cannot serve, then `windows` of (req/s, queued prompt tokens)."""
    decide(p, 1, 60.0, QUEUE)
    return [decide(p, k, rate, queued) for k, (rate, queued) in enumerate(windows, 2)]


def test_slow_first_tokens_while_the_burst_s_queue_drains_are_not_learned():
    draining = [(0.5, QUEUE)] * 12  # 60 s after the burst, the queue still long
    assert all(c == 1.0 for c in burst_then(planner("skip_drain"), draining))
    assert burst_then(planner("skip"), draining)[-1] > 1.0  # skip stops leaving out after 30 s


def test_once_the_queue_has_drained_slow_first_tokens_are_learned_again():
    got = burst_then(planner("skip_drain"), [(0.5, QUEUE)] * 4 + [(0.5, 0)] * 12)
    assert got[3] == 1.0 and got[-1] > 1.2


def test_a_queue_that_outlasts_a_start_up_and_the_backlog_horizon_is_learned_from():
    # 60 s start-up + 30 s: from 90 s after the burst the queue says the fleet is short
    got = burst_then(planner("skip_drain"), [(0.5, QUEUE)] * 30)
    assert got[15] == 1.0  # 80 s after
    assert got[-1] > 1.2


def test_latency_in_bursts_lists_its_modes():
    with pytest.raises(ValidationError, match=r"latency_in_bursts\n.*'learn', 'skip' or 'skip_drain'"):
        PlannerConfig(latency_in_bursts="always")
