"""The constrain stage, pure: bounds, the shared GPU budget and the scale-down hold."""

from __future__ import annotations

import pytest

from scaler.planner.config import PlannerConfig
from scaler.planner.constraints import DownHold, clamp, constrain, fit_budget


@pytest.mark.parametrize("n, lo, hi, out", [(5, 1, 4, 4), (0, 1, 4, 1), (3, 1, 4, 3)])
def test_clamp(n, lo, hi, out):
    assert clamp(n, lo, hi) == out


@pytest.mark.parametrize("args, out", [
    ((4, 4, None), (4, 4, False)),                  # no budget
    ((2, 2, 4), (2, 2, False)),                     # fits
    ((4, 4, 4), (2, 2, True)),                      # shared in proportion to need
    ((1, 1, 1), (1, 0, True)),                      # on a tie prefill is served first
    ((6, 2, 4), (3, 1, True)),
    ((2, 2, 4, 1, 2), (2, 1, True)),                # a 2-GPU decode worker does not fit the last GPU
    ((4, 4, 4, 1, 1, 1, 2), (2, 2, True)),          # minimums first, then the furthest behind
])
def test_fit_budget(args, out):
    assert fit_budget(*args) == out


def run_hold(hold: DownHold, current: int, needs: list[tuple[float, int]]) -> list[int]:
    return [hold.apply(t, current, need) for t, need in needs]


def test_hold_waits_a_whole_period_then_steps_down():
    got = run_hold(DownHold(10.0, 0.5), 4, [(0.0, 2), (5.0, 2), (10.0, 2)])
    assert got == [4, 4, 2]


def test_hold_removes_at_most_a_step():
    assert run_hold(DownHold(10.0, 0.25), 8, [(0.0, 1), (5.0, 1), (10.0, 1)]) == [8, 8, 6]
    assert DownHold(10.0, 0.1).apply(0.0, 3, 1) == 3 and run_hold(DownHold(0.0, 0.1), 3, [(0.0, 1)]) == [2]


def test_hold_keeps_the_highest_need_of_its_window():
    got = run_hold(DownHold(10.0, 0.25), 8, [(0.0, 8), (5.0, 1), (10.0, 1), (15.0, 1)])
    assert got == [8, 8, 8, 6]  # the 8 at t=0 is forgotten only after 10 s


def test_hold_never_delays_a_scale_up():
    assert DownHold(300.0, 0.25).apply(0.0, 4, 10) == 10


@pytest.mark.parametrize("settings, needs, current, out", [
    # rounded up, then bounded
    ({"max_prefill": 2}, (2.3, 0.2), (0, 0), (2, 1, False)),
    ({}, (2.0000001, 1.0), (0, 0), (2, 1, False)),
    # a lower need waits for the hold
    ({}, (1.0, 1.0), (5, 1), (5, 1, False)),
    ({"scale_down_hold_s": 0.0, "scale_down_step": 0.5}, (1.0, 1.0), (6, 1), (3, 1, False)),
    # then the budget cuts
    ({"gpu_budget": 4}, (5.0, 3.0), (0, 0), (2, 2, True)),
])
def test_constrain(settings, needs, current, out):
    c = PlannerConfig(**settings)
    holds = DownHold(c.scale_down_hold_s, c.scale_down_step), DownHold(c.scale_down_hold_s, c.scale_down_step)
    assert constrain(0.0, *needs, *current, c, 1, 1, *holds) == out
