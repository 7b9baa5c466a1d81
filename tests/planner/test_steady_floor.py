"""The steady floor (planner.floor: steady, scaler/planner/floor.py): prefill held at the fleet for
the recent load while load only clumps for less than a start-up, the planner's need followed once
load shifts for longer, reported in the decision. Pure: observations built by hand."""

from __future__ import annotations

import pydantic
import pytest

from scaler.planner.config import PlannerConfig
from scaler.planner.floor import SteadyFloor, apply_floor, whole
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0


@pytest.mark.parametrize("need, floor, sustained, workers, held", [
    (3.0, 8.0, 2.0, 8.0, True),     # below the floor: the floor
    (12.0, 8.0, 2.0, 8.0, True),    # a clump: the planner's need is set aside
    (12.0, 8.0, 8.0, 8.0, True),    # the load of the last start-up just fits the floor: held
    (12.0, 8.0, 9.0, 12.0, False),  # it outgrew the floor: follow the need
    (6.0, 8.0, 9.0, 8.0, False),    # following, never below the floor
])
def test_apply_floor(need, floor, sustained, workers, held):
    d = apply_floor(need, floor, sustained)
    assert (d.workers, d.held, d.floor, d.sustained) == (workers, held, floor, sustained)


@pytest.mark.parametrize("x, expected", [
    (8.0, 8.0), (8.008, 8.0), (7.995, 8.0),  # bisection ends just off a whole worker
    (8.5, 8.5), (8.05, 8.05), (0.001, 0.001), (0.0, 0.0),
])
def test_whole_snaps_only_bisection_noise(x, expected):
    assert whole(x) == expected


@pytest.mark.parametrize("startup_s, active", [(0.0, False), (5.0, False), (10.0, True), (120.0, True)])
def test_the_floor_applies_only_when_workers_start_too_slowly_to_catch_a_clump(startup_s, active):
    assert SteadyFloor(min_startup_s=10.0).active(startup_s) is active


def test_sustained_rate_is_the_mean_load_of_the_last_start_up():
    f = SteadyFloor()
    for rate in [2.0] * 24 + [100.0] + [2.0] * 12:  # a 5 s clump, then a minute of 2 req/s
        f.update(rate, STEP)
    assert f.sustained_rate(60.0) == pytest.approx(2.0)
    assert f.sustained_rate(120.0) == pytest.approx((100.0 + 23 * 2.0) / 24)
    rates, weights = f.distribution()
    assert rates.max() == pytest.approx(100.0) and weights.sum() == pytest.approx(1.0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SteadyFloor(history_s=0.0)
    with pytest.raises(ValueError):
        SteadyFloor(min_startup_s=-1.0)
    with pytest.raises(pydantic.ValidationError):
        PlannerConfig(floor="steady", need_model="mean")  # the floor is sized with the tail model


def obs(t: float, rate: float, prefill: int) -> Observation:
    n = int(rate * STEP)
    return Observation(t, TrafficWindow(STEP, n, 2000.0 if n else None, 50.0 if n else None, 100.0 if n else None,
                                        10.0 if n else None), PoolObservation(active=prefill), PoolObservation(active=2))


def planner(**kw) -> PredictivePlanner:
    # the fixed clumping: these rates are exact, which the counts would read as no clumping at all
    return PredictivePlanner(bundled_profile(), PlannerConfig(**{
        "startup_s": 60.0, "need_model": "tail", "bursts": "mix", "arrival_ca2": 9.0, "arrival_clumping": "fixed",
        **kw}))


def replay(p: PredictivePlanner, rates: list[float], t: float = 0.0, prefill: int = 2):
    """Decisions on `rates` (one per decision), the pool taking each target at once."""
    out = []
    for rate in rates:
        t += STEP
        d = p.decide(obs(t, rate, prefill))
        prefill = d.target_prefill
        out.append(d)
    return out, t, prefill


CLUMPY = ([120.0, 120.0] + [3.0] * 22) * 20  # a 10 s clump at 120 req/s every two minutes over 3 req/s


def test_clumps_shorter_than_a_start_up_are_not_chased():
    held, _, _ = replay(planner(floor="steady", floor_half_life_s=600.0), CLUMPY)
    # a planner that carries each clump's trend over minutes (trend_horizon_s 300) chases them
    chasing, _, _ = replay(planner(trend_horizon_s=300.0), CLUMPY)
    late = slice(len(CLUMPY) // 2, None)  # once the first clumps are in the history
    fleet = {d.target_prefill for d in held[late]}
    assert len(fleet) == 1  # one fleet through clumps and gaps alike
    assert all(d.details.floor_held == 1.0 for d in held[late])
    assert max(d.target_prefill for d in chasing[late]) > fleet.pop()  # alone, the planner keeps more for them
    d = held[-1]
    assert d.details.floor_prefill_workers == d.details.prefill_need
    assert "held at the steady floor" in d.reason


def shifted(level: float):
    p = planner(floor="steady", floor_half_life_s=600.0)
    _, t0, pre = replay(p, [3.0] * 240)  # 20 minutes of steady low load: a small floor
    return pre, replay(p, [level] * 36, t0, pre)[0]


def test_a_shift_that_outlasts_the_start_up_is_followed():
    before, after = shifted(12.0)
    k = next(i for i, d in enumerate(after) if d.details.floor_held == 0.0)
    assert STEP < (k + 1) * STEP <= 60.0 + STEP  # released within a start-up of the shift, not at once
    assert all(d.target_prefill == before for d in after[:k])
    assert after[k].details.floor_sustained_workers > after[k].details.floor_prefill_workers
    # once released, the pool follows the need as soon as the need (forecast, bursts) rises
    j = next(i for i, d in enumerate(after) if d.target_prefill > before)
    assert k <= j <= k + 1
    d = after[j]
    assert d.details.floor_held == 0.0 and d.details.prefill_need > d.details.floor_prefill_workers
    assert "above the steady floor" in d.reason


def test_a_large_shift_raises_the_floor_itself_at_once():
    # the history weighs each load by the requests it carried: a few seconds of much more load
    # soon outweigh twenty minutes of little
    before, after = shifted(80.0)
    assert after[0].target_prefill > before
    assert after[0].details.floor_held == 1.0
    assert after[-1].details.floor_prefill_workers > after[0].details.floor_prefill_workers


def test_with_fast_start_ups_or_by_default_there_is_no_floor():
    fast = replay(planner(floor="steady", startup_s=0.0), CLUMPY[:240])[0]
    plain = replay(planner(startup_s=0.0), CLUMPY[:240])[0]
    assert [d.target_prefill for d in fast] == [d.target_prefill for d in plain]
    assert all(d.details.floor_prefill_workers is None for d in fast)
    assert "floor" not in fast[-1].reason
    assert PlannerConfig().floor == "none"
