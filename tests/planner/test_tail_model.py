"""The tail model of need (scaler.planner.tail): prefill workers sized for the share of requests
meeting the TTFT target from the distribution of prompt lengths, checked against a direct
simulation of the queue it models; decode KV sized for the tail of what is in flight. Pure."""

from __future__ import annotations

import heapq
import math
import random

import numpy as np
import pytest

from scaler.planner import tail
from scaler.planner.sizing import ceil_replicas
from scaler.profile import bundled_profile

PROFILE = bundled_profile()
TTFT_MS = 500.0


def simulate(rate: float, lengths: list[float], weights: list[float], workers: int, n: int = 40000,
             seed: int = 1) -> float:
    """FCFS pooled queue of `workers` servers, Poisson arrivals, service = the profile's TTFT:
    the share of reachable requests whose wait + service meets the target."""
    rng = random.Random(seed)
    free = [0.0] * workers
    heapq.heapify(free)
    t = 0.0
    met = reachable = 0
    for _ in range(n):
        t += rng.expovariate(rate)
        x = rng.choices(lengths, weights)[0]
        s = PROFILE.prefill.ttft_ms_at(x) / 1000.0
        start = max(t, heapq.heappop(free))
        heapq.heappush(free, start + s)
        if s <= TTFT_MS / 1000.0:
            reachable += 1
            met += (start - t + s) <= TTFT_MS / 1000.0
    return met / reachable


LONG_TAIL = ([1000.0, 4000.0, 20000.0], [0.85, 0.1, 0.05])


@pytest.mark.parametrize("rate,workers", [(20.0, 2), (40.0, 3), (60.0, 5), (100.0, 8)])
def test_predicted_attainment_matches_a_simulated_queue(rate, workers):
    # where sizing works (attainment 0.93-0.999); near saturation the model is cautious, see below
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    predicted = tail.prefill_attainment(rate, mix, workers, PROFILE, TTFT_MS)
    simulated = simulate(rate, *LONG_TAIL, workers)
    assert predicted == pytest.approx(simulated, abs=0.02), (predicted, simulated)


def test_near_saturation_the_model_errs_toward_more_capacity():
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    predicted = tail.prefill_attainment(60.0, mix, 4, PROFILE, TTFT_MS)  # 90% busy
    assert predicted < simulate(60.0, *LONG_TAIL, 4)


def test_long_prompts_need_more_workers_than_their_mean_says():
    # the same mean prompt, once as it is and once as a few 20k prompts among short ones
    mix = tail.PromptMix(np.array([1000.0, 20000.0]), np.array([0.9, 0.1]))
    point = tail.PromptMix.point(mix.mean)
    spread = tail.prefill_workers(20.0, mix, PROFILE, TTFT_MS, 0.99)
    mean_only = tail.prefill_workers(20.0, point, PROFILE, TTFT_MS, 0.99)
    assert spread > mean_only + 1
    # and the mean-only fleet misses the target on the real mix
    assert tail.prefill_attainment(20.0, mix, math.floor(mean_only), PROFILE, TTFT_MS) < 0.99


def test_workers_found_are_the_fewest_that_reach_the_target():
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    for target in (0.9, 0.95, 0.99, 0.999):
        c = tail.prefill_workers(50.0, mix, PROFILE, TTFT_MS, target)
        assert tail.prefill_attainment(50.0, mix, c, PROFILE, TTFT_MS) >= target
        assert tail.prefill_attainment(50.0, mix, math.floor(c) - 1, PROFILE, TTFT_MS) < target
    needs = [tail.prefill_workers(50.0, mix, PROFILE, TTFT_MS, t) for t in (0.9, 0.99, 0.999)]
    assert needs == sorted(needs) and needs[0] < needs[-1]


def test_workers_found_round_up_to_the_fewest_whole_workers():
    # attainment steps at whole workers: the answer is that whole number, not just above it,
    # which rounding up (ceil_replicas) would turn into one worker too many
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    for rate in (5.0, 20.0, 50.0, 120.0):
        for target in (0.9, 0.99):
            c = ceil_replicas(tail.prefill_workers(rate, mix, PROFILE, TTFT_MS, target))
            assert tail.prefill_attainment(rate, mix, c, PROFILE, TTFT_MS) >= target
            assert tail.prefill_attainment(rate, mix, c - 1, PROFILE, TTFT_MS) < target, (rate, target, c)


def test_prompts_no_worker_can_serve_in_time_load_the_queue_but_are_not_counted():
    short = tail.PromptMix(np.array([1000.0]), np.array([1.0]))
    with_huge = tail.PromptMix(np.array([1000.0, 100000.0]), np.array([0.9, 0.1]))  # 100k: over 2 s alone
    assert tail.prefill_attainment(1.0, with_huge, 50, PROFILE, TTFT_MS) == pytest.approx(1.0, abs=1e-6)
    assert (tail.prefill_workers(10.0, with_huge, PROFILE, TTFT_MS, 0.99)
            > tail.prefill_workers(10.0, short, PROFILE, TTFT_MS, 0.99) + 1)


def test_a_prompt_in_reach_only_from_its_cached_prefix_is_met_while_its_prefix_stays_cached():
    reuse = tail.CacheReuse(0.1, np.array([10.0, 100.0, 1000.0]), np.array([0.5, 0.3, 0.2]), 1000.0, 1e6)
    # a worker's 1M-token cache filled by its share of rate x 1000 new tokens keeps a prefix
    # workers x 1e6 / (rate x 1000) seconds
    assert [reuse.met(1, r) for r in (1.0, 10.0, 100.0)] == pytest.approx([1.0, 0.8, 0.5])
    assert reuse.met(10, 100.0) == pytest.approx(0.8)  # more workers keep prefixes longer
    # a tenth of the prompts are 100k tokens, beyond reach whole; on 50 workers the short ones
    # all meet the target, the others while cached: 50 x 1e6 / (1 x 1000) s holds every reuse,
    # 50 x 1e3 / 1000 s only the half reused within 10 s
    for cache, met in ((1e6, 1.0), (1e3, 0.5)):
        r = tail.CacheReuse(0.1, reuse.age_s, reuse.weight, 1000.0, cache)
        mix = tail.PromptMix(np.array([1000.0, 100000.0]), np.array([0.9, 0.1]), r)
        assert tail.prefill_attainment(1.0, mix, 50, PROFILE, TTFT_MS) == pytest.approx(0.9 + 0.1 * met, abs=1e-6)
    loose = tail.PromptMix(np.array([1000.0, 100000.0]), np.array([0.9, 0.1]))
    needs = [tail.prefill_workers(10.0, m, PROFILE, TTFT_MS, 0.97)
             for m in (loose, tail.PromptMix(loose.isl, loose.weight, tail.CacheReuse(
                 0.05, np.array([100.0, 1000.0]), np.array([0.5, 0.5]), 10000.0, 1e6)))]
    # 0.97 of all needs the reuses after 100 s met: a prefix kept 100 s takes 10 workers (10 x 1e6
    # / (10 x 10000)), where the prompts in reach whole need 6
    assert needs == [6.0, 10.0]
    # the history: prompts, the tokens they prefilled anew, and the reuse ages, all aged alike
    hist = tail.PromptHistory(half_life_s=60.0, cache_tokens=1e6)
    hist.add(tail.PromptMix.point(20000.0), 100, uncached=500000.0, bound_ages=[30.0] * 50)
    got = hist.mix().reuse
    assert got.share == pytest.approx(0.5) and got.uncached_tokens == pytest.approx(5000.0)
    assert got.age_s[0] == pytest.approx(30.0, rel=0.3) and got.cache_tokens == 1e6
    hist.add(tail.PromptMix.point(1000.0), 100, dt=600.0)  # ten half-lives later, no reuse
    assert hist.mix().reuse.share < 0.001 and hist.mix().reuse.uncached_tokens < 1100.0
    assert tail.PromptHistory().mix() is None
    untracked = tail.PromptHistory()
    untracked.add(tail.PromptMix.point(20000.0), 10, bound_ages=[30.0])
    assert untracked.mix().reuse is None  # no cache size: reuse not tracked


def test_bursts_within_the_window_raise_the_need():
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    arrivals = np.concatenate([np.linspace(0, 1, 100), np.linspace(1, 30, 50)])  # 2/3 of requests in 1 s
    bursts = tail.burst_factors(arrivals, 5.0, (0.0, 30.0))
    assert bursts[1].sum() == pytest.approx(1.0)
    flat = tail.prefill_workers(5.0, mix, PROFILE, TTFT_MS, 0.99)
    clumped = tail.prefill_workers(5.0, mix, PROFILE, TTFT_MS, 0.99, bursts=bursts)
    assert clumped > flat + 0.5
    assert tail.prefill_attainment(5.0, mix, math.floor(flat), PROFILE, TTFT_MS, bursts=bursts) < 0.99


def test_prompt_mix_from_lengths_histograms_and_history():
    mix = tail.PromptMix.from_lengths([100.0] * 3 + [20000.0])
    assert mix.mean == pytest.approx((300 + 20000) / 4)
    assert mix.weight.sum() == pytest.approx(1.0)
    assert tail.PromptMix.from_lengths([]) is None
    # live: cumulative counts by upper edge; the +Inf bucket is the total
    h = tail.PromptMix.from_histogram({1024.0: 90.0, 8192.0: 99.0, math.inf: 100.0})
    assert list(h.isl) == [1024.0, 8192.0, 16384.0]
    assert list(h.weight) == pytest.approx([0.9, 0.09, 0.01])
    # the decayed history forgets old prompts
    hist = tail.PromptHistory(half_life_s=60.0)
    hist.add(tail.PromptMix.point(20000.0), 100)
    hist.add(tail.PromptMix.point(1000.0), 100, dt=600.0)  # ten half-lives later
    assert hist.mix().mean < 1100.0


def test_erlang_c_and_normal_quantile_known_values():
    assert tail.erlang_c(1, 0.6) == pytest.approx(0.6)  # M/M/1: P(wait) = utilisation
    assert tail.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert tail.erlang_c(3, 3.5) == 1.0
    assert tail.normal_quantile(0.5) == pytest.approx(0.0, abs=1e-9)
    assert tail.normal_quantile(0.99) == pytest.approx(2.326348, abs=1e-5)
    assert tail.normal_quantile(0.001) == pytest.approx(-3.090232, abs=1e-5)


def test_decode_kv_is_sized_for_its_tail_not_its_mean():
    isl, osl, w = np.array([1000.0, 30000.0]), np.array([100.0, 500.0]), np.array([0.95, 0.05])
    mean, sd = tail.kv_in_flight(5.0, isl, osl, w, 0.01)
    assert mean == pytest.approx(5.0 * (0.95 * 1.0 * 1050 + 0.05 * 5.0 * 30250))
    at_half = tail.decode_kv_workers(5.0, isl, osl, w, 0.01, 100000.0, 1.0, 0.5)
    at_99 = tail.decode_kv_workers(5.0, isl, osl, w, 0.01, 100000.0, 1.0, 0.99)
    assert at_half == pytest.approx(mean / 100000.0)
    assert at_99 == pytest.approx((mean + 2.326348 * sd) / 100000.0, rel=1e-5)
