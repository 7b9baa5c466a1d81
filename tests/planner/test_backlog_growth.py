"""The backlog a start-up leaves (scaler/planner/sizing.py's load path): with
`backlog_growth: horizon` (the default) a clump of seconds is not read as arriving for the whole
start-up, while load that stays is. Pure: observations by hand."""

from __future__ import annotations

import pydantic
import pytest

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.planner.sizing import prefill_now
from scaler.policy import Decision, Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0
ISL = 2000


def test_the_growth_comes_from_the_rate_given_for_it():
    per = 20_000.0
    pool = PoolObservation(active=1, queued_tokens=60_000)
    # 30 req/s of 2,000 tokens over a 60 s start-up on one worker: 40,000 tok/s too many for 60 s
    assert prefill_now(30.0, ISL, pool, per, 60.0, 30.0).backlog == pytest.approx((60_000 + 40_000 * 60) / 600_000)
    # arrivals expected at 10 req/s over the start-up: the worker keeps up, only the queue is left
    slow = prefill_now(30.0, ISL, pool, per, 60.0, 30.0, growth_rate=10.0)
    assert slow.backlog == pytest.approx(60_000 / 600_000)
    assert slow.workers == pytest.approx(30.0 * ISL / per + 0.1)  # the rate now is still served


def window(n: int, queued: int = 0) -> tuple[TrafficWindow, PoolObservation]:
    return (TrafficWindow(STEP, n, float(ISL), 30.0, 100.0, 10.0),
            PoolObservation(active=1, queued_tokens=queued))


def run(windows, **settings) -> Decision:
    """The planner's decision after every (requests in 5 s, queued prompt tokens) window, on one
    running prefill worker with a 120 s start-up."""
    p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=120.0, **settings))
    d = None
    for k, (n, queued) in enumerate(windows, 1):
        traffic, prefill = window(n, queued)
        d = p.decide(Observation(k * STEP, traffic, prefill, PoolObservation(active=1)))
    assert d is not None
    return d


QUIET = [(50, 0)] * 60  # 10 req/s for five minutes: one worker keeps up


def test_a_clump_of_five_seconds_is_not_a_backlog_for_the_whole_start_up():
    clump = QUIET + [(500, 400_000)]  # 100 req/s for 5 s, 200 prompts queued
    per_interval, per_horizon = run(clump, backlog_growth="interval"), run(clump)
    assert per_interval.target_prefill >= 15  # 100 req/s read as lasting 120 s
    assert per_horizon.target_prefill <= per_interval.target_prefill - 8
    # what stays queued is still drained
    assert per_horizon.details.prefill_need > run(QUIET).details.prefill_need + 2
    assert "prefill backlog 400000 tokens" in per_horizon.reason


def test_load_that_stays_for_the_backlog_horizon_grows_the_backlog_as_before():
    stays = QUIET + [(500, 400_000)] * 8  # 100 req/s for 40 s
    per_interval, per_horizon = run(stays, backlog_growth="interval"), run(stays)
    assert per_horizon.target_prefill >= 15
    assert per_horizon.details.prefill_need == pytest.approx(per_interval.details.prefill_need, rel=0.05)


def test_a_lull_after_a_clump_is_not_read_as_more_arrivals():
    after = QUIET + [(1000, 0), (0, 0)]  # 200 req/s for 5 s, then none
    lull = run(after)
    assert "prefill backlog" not in lull.reason  # nothing queued, nothing arriving: none expected
    assert lull.details.prefill_need <= run(after, backlog_growth="interval").details.prefill_need + 1e-9


def test_backlog_growth_is_validated():
    with pytest.raises(pydantic.ValidationError, match=r"backlog_growth\n.*'interval' or 'horizon'"):
        PlannerConfig(backlog_growth="window")
