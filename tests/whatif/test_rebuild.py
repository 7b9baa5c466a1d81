"""The pure part of the what-if: the frontend's counts (requests per step, ISL/OSL histograms)
turned into a trace the replay engine takes, deterministic for a seed."""

from __future__ import annotations

import math

import pytest

from dynamo_scaling.traces import read_mooncake, write_mooncake
from scaler.whatif.rebuild import ObservedTraffic, RebuildError, buckets, rebuild, whole_counts

INF = math.inf


def _traffic(counts, isl=None, osl=None, step_s=60.0) -> ObservedTraffic:
    isl = isl if isl is not None else [{1000.0: c * 0.25, 4000.0: c, INF: c} for c in counts]
    osl = osl if osl is not None else [{100.0: c, INF: c} for c in counts]
    return ObservedTraffic(step_s, counts, isl, osl)


def test_every_step_gets_its_count_at_times_within_the_step():
    reqs = rebuild(_traffic([10, 0, 25, 3]), seed=1)
    per_step = [sum(1 for r in reqs if i * 60_000 <= r.timestamp_ms < (i + 1) * 60_000) for i in range(4)]
    assert per_step == [10, 0, 25, 3]
    assert [r.timestamp_ms for r in reqs] == sorted(r.timestamp_ms for r in reqs)
    assert all(r.timestamp_ms == int(r.timestamp_ms) for r in reqs)  # whole ms: a file reads back the same


def test_fractional_counts_keep_the_observed_total():
    # Prometheus extrapolates increases: 2.4 per step over 10 steps is 24 requests, not 20
    assert sum(whole_counts([2.4] * 10)) == 24
    assert whole_counts([0.5, 0.5, 0.5, 0.5]) == [1, 0, 1, 0]
    assert len(rebuild(_traffic([2.4] * 10), seed=0)) == 24


def test_lengths_follow_the_histogram_buckets():
    # a quarter of the prompts up to 1000 tokens, the rest in (1000, 4000]; answers up to 100 tokens
    reqs = rebuild(_traffic([4000]), seed=3)
    short = sum(1 for r in reqs if r.input_length <= 1000) / len(reqs)
    assert short == pytest.approx(0.25, abs=0.03)
    assert all(1 <= r.input_length <= 4000 for r in reqs)
    assert all(1 <= r.output_length <= 100 for r in reqs)
    # uniform within a bucket: the long prompts' mean sits mid-bucket
    long = [r.input_length for r in reqs if r.input_length > 1000]
    assert sum(long) / len(long) == pytest.approx(2500, rel=0.05)


def test_the_open_bucket_reaches_twice_the_largest_edge():
    assert buckets({100.0: 0, 200.0: 0, INF: 5}) == [(200.0, 400.0, 5)]
    reqs = rebuild(_traffic([50], isl=[{100.0: 0, 200.0: 0, INF: 50}]), seed=0)
    assert all(200 < r.input_length <= 400 for r in reqs)


def test_each_step_uses_its_own_histogram_and_an_empty_one_the_whole_windows():
    isl = [{500.0: 100, INF: 100}, {500.0: 0, 8000.0: 100, INF: 100}, {}]
    reqs = rebuild(_traffic([100, 100, 100], isl=isl), seed=0)
    first = [r.input_length for r in reqs if r.timestamp_ms < 60_000]
    second = [r.input_length for r in reqs if 60_000 <= r.timestamp_ms < 120_000]
    third = [r.input_length for r in reqs if r.timestamp_ms >= 120_000]
    assert max(first) <= 500 and min(second) > 500
    # the third step has no histogram of its own: half short, half long as over the window
    assert 0.35 < sum(1 for x in third if x <= 500) / len(third) < 0.65


def test_same_seed_same_trace_other_seed_other_trace():
    t = _traffic([30, 12, 7])
    assert rebuild(t, seed=5) == rebuild(t, seed=5)
    assert [(r.input_length, r.output_length) for r in rebuild(t, seed=5)] == \
           [(r.input_length, r.output_length) for r in rebuild(t, seed=5)]
    assert rebuild(t, seed=5) != rebuild(t, seed=6)


def test_the_trace_reads_back_from_a_file_exactly(tmp_path):
    reqs = rebuild(_traffic([40, 40]), seed=2)
    back = read_mooncake(write_mooncake(reqs, tmp_path / "t.jsonl"))
    assert [(r.timestamp_ms, r.input_length, r.output_length) for r in back] == \
           [(r.timestamp_ms, r.input_length, r.output_length) for r in reqs]


def test_counts_without_histograms_are_an_error_not_a_guess():
    with pytest.raises(RebuildError, match="input sequence length"):
        rebuild(_traffic([5], isl=[{}]))
    with pytest.raises(RebuildError, match="output sequence length"):
        rebuild(_traffic([5], osl=[{INF: 0}]))
    assert rebuild(_traffic([0, 0], isl=[{}, {}], osl=[{}, {}])) == []
    with pytest.raises(RebuildError):
        ObservedTraffic(60.0, [1.0, -1.0], [{}, {}], [{}, {}])
