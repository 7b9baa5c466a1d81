"""The error-budget loop (scaler.planner.budget): headroom rises when misses burn the budget too
fast, falls slowly when it is under-spent, stays bounded and does not oscillate. Pure."""

from __future__ import annotations

import pytest

from scaler.planner.budget import ErrorBudgetLoop


def test_misses_beyond_the_budget_raise_the_headroom_within_its_bound():
    loop = ErrorBudgetLoop(target=0.99, hi=2.0)
    before = loop.value
    loop.update(0.0, 500, 25, settle_s=0.0)  # 5% missed: five times the allowed 1%
    assert loop.value > before
    for k in range(1, 60):
        loop.update(k * 5.0, 500, 25, settle_s=0.0)
    assert loop.value == pytest.approx(2.0)


def test_a_raise_waits_for_the_settle_time_and_for_new_misses():
    loop = ErrorBudgetLoop(target=0.99)
    loop.update(0.0, 500, 50, settle_s=60.0)
    first = loop.value
    assert first > 1.0
    # the same misses again before capacity asked for could serve: no second raise
    for t in (5.0, 30.0, 55.0):
        loop.update(t, 500, 50, settle_s=60.0)
    assert loop.value == first
    loop.update(65.0, 500, 50, settle_s=60.0)
    assert loop.value > first


def test_requests_served_before_a_raise_serves_do_not_count():
    loop = ErrorBudgetLoop(target=0.99)
    loop.update(0.0, 500, 50, settle_s=60.0)
    first = loop.value
    for t in range(5, 60, 5):  # still missing: the capacity asked for is starting
        loop.update(float(t), 500, 50, settle_s=60.0)
    for t in range(60, 120, 5):  # the raise serves now, and it was enough
        loop.update(float(t), 500, 0, settle_s=60.0)
    assert loop.value == first  # no second raise: that would overshoot


def test_too_few_requests_tell_nothing():
    loop = ErrorBudgetLoop(target=0.99)  # needs 300 requests (3 misses at the allowed rate)
    loop.update(0.0, 50, 10, settle_s=0.0)
    assert loop.burn is None and loop.value == 1.0


def test_burn_inside_the_dead_band_keeps_the_headroom():
    loop = ErrorBudgetLoop(target=0.99, value=1.5)
    for k in range(100):
        loop.update(k * 5.0, 1000, 10, settle_s=0.0)  # exactly the budget: burn 1
    assert loop.value == 1.5


def test_an_under_spent_budget_lowers_slowly_and_only_after_the_hold():
    # a short memory of the level that missed, so that lowering reaches the floor in the test
    loop = ErrorBudgetLoop(target=0.99, hold_s=120.0, lower_per_min=0.2, floor_memory_s=60.0)
    loop.update(0.0, 1000, 100, settle_s=0.0)
    raised = loop.value
    assert raised > 1.0
    t = 0.0
    while t < 115.0:
        t += 5.0
        loop.update(t, 1000, 0, settle_s=0.0)
    assert loop.value == raised  # still inside the hold
    values = []
    while t < 1200.0:
        t += 5.0
        loop.update(t, 1000, 0, settle_s=0.0)
        values.append(loop.value)
    steps = [a - b for a, b in zip([raised] + values, values)]
    assert max(steps) <= 0.2 * 5.0 / 60.0 + 1e-12  # never faster than lower_per_min
    assert values[-1] == pytest.approx(1.0)  # down to the floor, not below


def test_lowering_stops_above_the_level_that_just_missed():
    loop = ErrorBudgetLoop(target=0.99, hold_s=0.0, lower_per_min=1.0)
    loop.update(0.0, 1000, 100, settle_s=0.0)  # 1.0 missed ten times the budget
    raised = loop.value
    for k in range(1, 121):  # ten minutes with no miss
        loop.update(k * 5.0, 1000, 0, settle_s=0.0)
    # the remembered floor, half a step above the 1.0 that missed, holds for an hour
    assert loop.value == pytest.approx(1.0 + (raised - 1.0) / 2)
    for k in range(121, 900):
        loop.update(k * 5.0, 1000, 0, settle_s=0.0)
    assert loop.value == pytest.approx(1.0)  # then it is forgotten


def test_requests_no_capacity_can_serve_do_not_burn_the_budget():
    loop = ErrorBudgetLoop(target=0.99)
    for k in range(10):
        loop.update(k * 5.0, 500, 100, settle_s=0.0, excluded=100)  # every miss was a prompt too long
    assert loop.burn == 0.0 and loop.value == 1.0


def test_prompts_beyond_reach_that_were_met_do_not_cancel_misses_of_other_windows():
    # a prefix cache meets some prompts too long for an idle worker: they are not misses to leave out
    loop = ErrorBudgetLoop(target=0.99)
    for k in range(0, 12, 2):
        loop.update(k * 5.0, 100, 0, settle_s=0.0, excluded=10)   # ten beyond reach, every one met
        loop.update(k * 5.0 + 5.0, 100, 10, settle_s=0.0)          # ten misses a larger fleet prevents
    assert loop.value > 1.0
    assert loop.last_burn is not None and loop.last_burn > 4.0


def test_against_a_fleet_it_settles_without_oscillating():
    """A plant where the miss share falls with headroom (8% below 1.3, 3% below 1.8, 0.3% from
    1.8 on) and a raise serves one settle time later: over an hour the loop climbs, then lowers
    at most to just above the level that missed; it never reverses direction more than once."""
    def miss_share(h: float) -> float:
        return 0.08 if h < 1.3 else 0.03 if h < 1.8 else 0.003

    loop = ErrorBudgetLoop(target=0.99, hi=3.0)
    settle, t, values = 65.0, 0.0, [loop.value]
    applied = loop.value  # headroom takes effect one settle time after it is asked for
    pending: list[tuple[float, float]] = []
    while t < 3600.0:
        t += 5.0
        pending.append((t + settle, loop.value))
        while pending and pending[0][0] <= t:
            applied = pending.pop(0)[1]
        loop.update(t, 100, round(100 * miss_share(applied)), settle)
        values.append(loop.value)
    moves = [b - a for a, b in zip(values, values[1:]) if abs(b - a) > 1e-12]
    reversals = sum(1 for a, b in zip(moves, moves[1:]) if (a > 0) != (b > 0))
    assert reversals <= 1, values
    assert 1.8 <= values[-1] <= 3.0  # it found enough headroom and kept it


def _clump_then_quiet(window_cap):
    """A clump: one window of 100 requests with 60 misses among windows that miss none."""
    loop = ErrorBudgetLoop(target=0.99, window_cap=window_cap)
    for k in range(6):
        loop.update(k * 5.0, 100, 0, settle_s=0.0)
    loop.update(30.0, 100, 60, settle_s=0.0)
    for k in range(7, 12):
        loop.update(k * 5.0, 100, 0, settle_s=0.0)
    return loop


def test_a_window_cap_keeps_one_clump_of_misses_from_raising_the_headroom():
    assert _clump_then_quiet(None).value > 1.0  # the clump alone spends the budget 50 times over
    capped = _clump_then_quiet(3.0)
    assert capped.value == 1.0
    assert capped.last_burn is not None and capped.last_burn < 1.5


def test_with_a_window_cap_misses_that_keep_coming_still_raise_it():
    loop = ErrorBudgetLoop(target=0.99, window_cap=3.0)
    for k in range(12):
        loop.update(k * 5.0, 100, 5, settle_s=0.0)  # five times the budget, every window
    assert loop.value > 1.0
    assert loop.last_burn == pytest.approx(3.0)  # each window counts three times the budget at most


def test_at_light_load_one_miss_in_a_window_is_not_a_clump():
    # 15 requests a window allow 0.15 misses at 0.99: a cap of 3 would count a lone miss as 0.45
    loop = ErrorBudgetLoop(target=0.99, window_cap=3.0)
    for k in range(60):
        loop.update(k * 5.0, 15, 1, settle_s=0.0)  # a miss every window: 6.7 times the budget
    assert loop.value > 1.0
    assert loop.last_burn is not None and loop.last_burn > 5.0


def test_a_window_cap_leaves_requests_beyond_reach_out_as_before():
    loop = ErrorBudgetLoop(target=0.99, window_cap=3.0)
    for k in range(10):
        loop.update(k * 5.0, 500, 100, settle_s=0.0, excluded=100)
    assert loop.burn == 0.0 and loop.value == 1.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ErrorBudgetLoop(target=1.0)
    with pytest.raises(ValueError, match="window_cap"):
        ErrorBudgetLoop(window_cap=1.5)  # at raise_above no burn could ever raise the headroom
    with pytest.raises(ValueError):
        ErrorBudgetLoop(lo=2.0, hi=1.0)
