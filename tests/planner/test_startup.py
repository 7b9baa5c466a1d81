"""Start-up time measured from what a pool reports: each worker that turns active is matched
with the oldest still-starting one."""

from __future__ import annotations

import pytest

from scaler.planner.startup import StartupTracker


def track(reports: list[tuple[float, int, int]], prior_s: float = 60.0) -> StartupTracker:
    t = StartupTracker(prior_s)
    for now, active, starting in reports:
        t.observe(now, active, starting)
    return t


@pytest.mark.parametrize("reports, estimate, samples", [
    ([], 60.0, 0),                                              # the prior until a worker starts
    ([(0.0, 1, 1), (10.0, 1, 1)], 60.0, 0),                     # still starting
    ([(0.0, 1, 1), (30.0, 2, 0)], 30.0, 1),                     # the first sample replaces the prior
    ([(0.0, 1, 1), (30.0, 2, 0), (40.0, 2, 1), (100.0, 3, 0)], 0.7 * 30 + 0.3 * 60, 2),  # then smoothed
    ([(0.0, 1, 0), (20.0, 1, 2), (30.0, 2, 1), (50.0, 3, 0)], 0.7 * 10 + 0.3 * 30, 2),
    # a worker removed while starting is no sample, and its start is forgotten
    ([(0.0, 1, 2), (10.0, 1, 0), (20.0, 1, 1), (50.0, 2, 0)], 30.0, 1),
    # a worker that appears and turns active between two reports was never seen starting: 0 s
    ([(0.0, 1, 0), (10.0, 2, 0)], 0.0, 1),
])
def test_startup_estimate(reports, estimate, samples):
    t = track(reports)
    assert t.estimate_s == pytest.approx(estimate) and t.samples == samples
