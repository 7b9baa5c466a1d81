"""The benchmark's frozen windows: every trace is in the repository, every window lies inside its
trace, and no scored span of a tuning set overlaps one of the reporting set of the same trace."""

from __future__ import annotations

import pytest

from benchmarks.replay import DEV, DEV2, HELD_BACK, HELD_OUT, HELD_OUT2, SETS, TRACES
from dynamo_scaling.traces import duration_s, read_trace, window

PAIRS = [(DEV, HELD_OUT), (DEV2, HELD_OUT2)]


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_window_has_requests_inside_its_trace(name: str) -> None:
    for fname, a, b, rate in SETS[name]:
        reqs = read_trace(TRACES / fname)
        assert 0 <= a < b, (fname, a, b)
        assert a < duration_s(reqs), f"{fname}: window starts after the trace's last request"
        assert rate > 0
        assert len(window(reqs, a, b)) > 100, f"{fname}[{a}-{b}] has almost no requests"


@pytest.mark.parametrize("dev,held", PAIRS)
def test_scored_spans_of_tuning_and_reporting_windows_do_not_overlap(dev, held) -> None:
    for f1, a1, b1, _ in dev:
        for f2, a2, b2, _ in held:
            if f1 == f2:
                assert b1 <= a2 or b2 <= a1, f"{f1}: dev {a1}-{b1} overlaps held-out {a2}-{b2}"


def test_the_second_pair_plays_traces_the_first_does_not() -> None:
    first = {f for f, *_ in DEV + HELD_OUT}
    second = {f for f, *_ in DEV2 + HELD_OUT2}
    assert not first & second
    assert {f for f, *_ in DEV2} == {f for f, *_ in HELD_OUT2}


def test_the_last_request_of_each_reporting_trace_is_scored() -> None:
    for fname, _a, b, _rate in HELD_OUT2:
        assert b > duration_s(read_trace(TRACES / fname)), fname


def test_the_held_back_set_plays_reporting_windows_at_rates_no_other_set_plays_them_at() -> None:
    reporting = {(f, a, b): rate for f, a, b, rate in HELD_OUT + HELD_OUT2}
    for fname, a, b, rate in HELD_BACK:
        assert (fname, a, b) in reporting, f"{fname}[{a}-{b}] is not a reporting window"
        assert rate != reporting[(fname, a, b)], f"{fname}[{a}-{b}] at x{rate:g} is the reporting set itself"
    assert {f for f, *_ in HELD_BACK} == {f for f, *_ in HELD_OUT + HELD_OUT2}  # every trace
