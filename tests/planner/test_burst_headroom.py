"""Burst headroom (scaler.planner.bursts): capacity kept for load that rises faster than workers
start, drawn from the recent distribution of rises, held through the gaps between bursts and
released once bursts stop. Pure."""

from __future__ import annotations

import random

import pytest

from scaler.planner.bursts import BurstHeadroom

STEP = 5.0


def feed(b: BurstHeadroom, values: list[float], dt: float = STEP) -> None:
    for v in values:
        b.update(v, dt)


def on_off(cycles: int, burst: float = 100.0, on: int = 4, off: int = 20) -> list[float]:
    """Bursts of `on` decisions at `burst`, gaps of `off` decisions at zero."""
    return ([burst] * on + [0.0] * off) * cycles


def test_steady_load_needs_no_headroom_for_bursts():
    b = BurstHeadroom()
    feed(b, [40.0] * 200)
    assert b.rise(60.0) == pytest.approx(0.0)
    assert b.level(60.0) == pytest.approx(40.0)


def test_capacity_is_held_through_the_gaps_between_bursts():
    b = BurstHeadroom()
    feed(b, on_off(10))  # the last decisions are a gap: load is zero now
    level = b.level(60.0)
    # the bursts rise by their full height within a start-up delay; a flat mean would keep ~17
    assert level >= 90.0
    assert b.samples[-1][1] == 0.0


def test_headroom_is_released_once_bursts_stop():
    b = BurstHeadroom()
    feed(b, on_off(10))
    held = b.level(60.0)
    levels = []
    for _ in range(240):  # twenty minutes of quiet, steady traffic
        feed(b, [5.0])
        levels.append(b.level(60.0))
    # released, although the bursts (20 times the quiet load) are still in the history
    assert any(v == 100.0 for _, v, _ in b.samples)
    assert levels[-1] == pytest.approx(5.0, abs=1.0)
    assert levels[-1] < held / 10
    # and not at once: a gap of a few minutes keeps it
    assert levels[24] > held / 2


def test_a_rare_short_spike_with_few_requests_does_not_set_the_level():
    b = BurstHeadroom(quantile=0.9)
    load = [30.0] * 300
    load[150] = 300.0  # one decision at ten times the load: 1/30 of the requests
    feed(b, load)
    assert b.level(60.0) < 60.0  # a flat recent peak would hold 300 for its whole window


def test_a_longer_start_up_keeps_more_for_a_ramp():
    b = BurstHeadroom()
    feed(b, [0.0] * 10 + [float(k) for k in range(200)])  # +1 per decision
    assert b.rise(120.0) > b.rise(30.0) > 0.0


def test_history_is_bounded():
    b = BurstHeadroom(history_s=600.0)
    feed(b, [1.0] * 1000)
    assert len(b.samples) <= 600.0 / STEP + 1


def test_rises_agree_with_a_direct_computation():
    """The prefix-sum computation against the definition, on ragged sample durations."""
    def direct(b: BurstHeadroom, length_s: float) -> list[float]:
        s, out = list(b.samples), []
        for i, (t_end, v, d) in enumerate(s):
            start, area, span = t_end - d - length_s, 0.0, 0.0
            for te, vv, dd in reversed(s[:i]):
                if te <= start:
                    break
                part = min(dd, te - start)
                area, span = area + vv * part, span + part
            if span > 0:
                out.append(max(0.0, v - area / span))
        return out

    rng = random.Random(3)
    b = BurstHeadroom(history_s=400.0)
    for _ in range(200):
        b.update(rng.choice([0.0, 0.0, 5.0, 30.0]) * rng.random(), rng.choice([5.0, 5.0, 4.9, 10.0]))
    for length in (5.0, 12.5, 65.0, 125.0):
        assert [r for r, _, _ in b.rises(length)] == pytest.approx(direct(b, length))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        BurstHeadroom(quantile=0.0)
    with pytest.raises(ValueError):
        BurstHeadroom(half_life_s=0.0)
