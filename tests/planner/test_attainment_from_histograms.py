"""SLA counts read from latency histograms (scaler.planner.attainment), the live seam of the
error-budget loop: targets on an edge read exactly, between edges conservatively. Pure."""

from __future__ import annotations

import math

import pytest

from scaler.planner.attainment import count_above, count_at_or_below, slo_from_histograms
from scaler.profile import bundled_profile

INF = math.inf
# cumulative counts by upper edge (seconds), as the increase of _bucket{le=...} over a window
TTFT = {0.1: 50, 0.25: 80, 0.5: 90, 1.0: 97, 2.5: 100, INF: 100}
ITL = {0.01: 400, 0.025: 900, 0.05: 980, 0.1: 1000, INF: 1000}


def test_a_target_on_an_edge_is_read_exactly():
    slo = slo_from_histograms(TTFT, ITL, ttft_target_ms=500.0, itl_target_ms=50.0)
    assert (slo.measured, slo.ttft_missed) == (100, 10)
    assert slo.itl_missed == 2  # 2% of the ITL observations, as a share of the 100 requests


def test_a_target_between_edges_counts_the_straddling_bucket_as_missed():
    assert count_at_or_below(TTFT, 0.4) == 80  # the 0.25-0.5 bucket cannot be split
    slo = slo_from_histograms(TTFT, None, ttft_target_ms=400.0, itl_target_ms=50.0)
    assert slo.ttft_missed == 20 and slo.itl_missed == 0


def test_prompts_too_long_for_any_worker_come_from_the_isl_histogram():
    profile = bundled_profile()
    limit = next(n for n in range(1000, 200_000, 1000) if profile.prefill.ttft_ms_at(n) > 500.0)
    isl = {4096: 60, 16384: 85, 32768: 95, 65536: 100, INF: 100}
    assert 16384 < limit <= 32768  # the bundled profile misses 500 ms from about 24k tokens
    slo = slo_from_histograms(TTFT, ITL, 500.0, 50.0, isl_tokens=isl, unloaded_ttft_ms=profile.prefill.ttft_ms_at)
    assert slo.unreachable == count_above(isl, limit) == 5  # only buckets wholly above the limit


def test_the_total_bucket_is_required():
    with pytest.raises(ValueError):
        slo_from_histograms({0.1: 5, 0.5: 9}, None, 500.0, 50.0)
