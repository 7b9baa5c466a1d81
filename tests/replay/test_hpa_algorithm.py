"""The HPA v2 algorithm on hand-computed cases."""

from __future__ import annotations

from scaler.algorithms.hpa import HPA, HPAConfig


def test_tolerance_and_ratio():
    h = HPA()
    assert h.raw_desired(4, 1.05) == 4  # within 10 %
    assert h.raw_desired(4, 1.2) == 5  # ceil(4.8)
    assert h.raw_desired(4, 0.5) == 2


def test_average_value_needs_no_pods():
    h = HPA()
    assert h.desired_from_average_value(total=30, target=10, current=1) == 3
    assert h.desired_from_average_value(total=31, target=10, current=3) == 3  # 31/30 is inside the tolerance
    assert h.desired_from_average_value(total=45, target=10, current=3) == 5  # ceil(3 x 1.5)


def test_scale_up_limited_to_max_4_pods_or_double_per_period():
    h = HPA(HPAConfig(max_replicas=100))
    assert h.step(0.0, 2, 20) == 6  # +4 pods beats +100 % (4)
    assert h.step(5.0, 6, 20) == 6  # same 15 s period: no more
    assert h.step(16.0, 6, 20) == 12  # next period: +100 % of 6


def test_scale_down_waits_for_the_stabilization_window():
    h = HPA()
    assert h.step(0.0, 10, 10) == 10
    assert h.step(60.0, 10, 2) == 10  # the highest recommendation of the last 300 s is 10
    assert h.step(299.0, 10, 2) == 10
    assert h.step(301.0, 10, 2) == 2  # 10 fell out of the window at t=0 + 300
