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


def simulate_round_robin(rate: float, lengths: list[float], weights: list[float], workers: int, reps: int = 300,
                         seed: int = 2) -> float:
    """Round robin as the model takes it: Poisson arrivals from an idle start, prompt i to worker
    i mod c, each worker first come first served, busy for the prompt's tokens at the profiled
    throughput, the prompt's own TTFT its unloaded one; scored over the last RR_SLICE_S seconds
    of RR_HISTORY_S + RR_SLICE_S."""
    rng = random.Random(seed)
    span = tail.RR_HISTORY_S + tail.RR_SLICE_S
    met = scored = 0
    for _ in range(reps):
        free = [0.0] * workers
        t, i = rng.expovariate(rate), 0
        while t < span:
            x = rng.choices(lengths, weights)[0]
            own = PROFILE.prefill.ttft_ms_at(x) / 1000.0
            start = max(t, free[i % workers])
            free[i % workers] = start + x / PROFILE.prefill.throughput_per_gpu_at(x)
            if t >= tail.RR_HISTORY_S and own <= TTFT_MS / 1000.0:
                scored += 1
                met += (start - t + own) <= TTFT_MS / 1000.0
            t, i = t + rng.expovariate(rate), i + 1
    return met / scored


@pytest.mark.parametrize("rate,workers", [(20.0, 2), (40.0, 4), (60.0, 6), (100.0, 10)])
def test_round_robin_attainment_matches_a_simulated_round_robin(rate, workers):
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    predicted = tail.prefill_attainment(rate, mix, workers, PROFILE, TTFT_MS, ca2=1.0, routing="round_robin")
    assert predicted == pytest.approx(simulate_round_robin(rate, *LONG_TAIL, workers), abs=0.02)


def test_round_robin_keeps_short_prompts_behind_long_ones_so_it_needs_more_workers_than_a_pool():
    mix = tail.PromptMix(np.array([1000.0, 20000.0]), np.array([0.9, 0.1]))
    for rate in (20.0, 40.0):
        rr = tail.prefill_workers(rate, mix, PROFILE, TTFT_MS, 0.99, ca2=1.0, routing="round_robin")
        pooled = tail.prefill_workers(rate, mix, PROFILE, TTFT_MS, 0.99, ca2=1.0)
        assert rr >= pooled + 2, (rate, rr, pooled)
    # and a pool's fleet misses the target when prompts are dealt in turn
    pooled = math.ceil(tail.prefill_workers(40.0, mix, PROFILE, TTFT_MS, 0.99, ca2=1.0))
    assert tail.prefill_attainment(40.0, mix, pooled, PROFILE, TTFT_MS, ca2=1.0, routing="round_robin") < 0.97


def test_round_robin_workers_are_the_fewest_whole_workers_and_grow_with_target_and_clumping():
    mix = tail.PromptMix(np.array(LONG_TAIL[0]), np.array(LONG_TAIL[1]))
    bursts = (np.array([0.5, 1.0, 3.0]), np.array([0.3, 0.5, 0.2]))
    found = []
    for target in (0.9, 0.95, 0.99):
        c = tail.prefill_workers(50.0, mix, PROFILE, TTFT_MS, target, ca2=2.0, bursts=bursts, routing="round_robin")
        assert c == int(c)
        assert tail.prefill_attainment(50.0, mix, c, PROFILE, TTFT_MS, 2.0, bursts, "round_robin") >= target
        assert tail.prefill_attainment(50.0, mix, c - 1, PROFILE, TTFT_MS, 2.0, bursts, "round_robin") < target
        found.append(c)
    assert found == sorted(found) and found[0] < found[-1]
    calm = tail.prefill_workers(50.0, mix, PROFILE, TTFT_MS, 0.99, ca2=1.0, routing="round_robin")
    clumped = tail.prefill_workers(50.0, mix, PROFILE, TTFT_MS, 0.99, ca2=9.0, routing="round_robin")
    assert clumped > calm
    # the same question twice gets the same answer (fixed draws)
    assert tail.prefill_workers(50.0, mix, PROFILE, TTFT_MS, 0.99, ca2=9.0, routing="round_robin") == clumped


def test_round_robin_load_classes_are_merged_keeping_requests_and_the_busiest_loads():
    rates = np.geomspace(1.0, 200.0, 40)
    share = np.full(40, 1 / 40)
    r, w = tail._coarse(np.append(rates, 0.0), np.append(share, 0.1))
    assert len(r) <= tail.RR_CLASSES + 1
    assert w.sum() == pytest.approx(1.1)
    assert np.dot(r, w) == pytest.approx(np.dot(rates, share))  # requests kept
    assert r.max() > 150.0  # the busiest class stays busy


def test_the_mean_wait_allowed_meets_the_target_over_the_slack_and_prompts_near_the_target_take_most_of_it():
    one = tail.allowed_mean_wait(np.array([200.0]), np.array([1.0]), 0.95)
    assert one == pytest.approx(200.0 / np.log(20.0), rel=1e-6)
    slack, weight = np.array([20.0, 400.0, -50.0]), np.array([0.05, 0.85, 0.10])  # the last out of reach
    wait = tail.allowed_mean_wait(slack, weight, 0.95)
    reach = slack > 0
    share = weight[reach] @ (1 - np.exp(-slack[reach] / wait)) / weight[reach].sum()
    assert share == pytest.approx(0.95, abs=1e-6)
    # one prompt in 17 with little slack takes 40 % of the allowance of the rest
    assert wait < 0.65 * tail.allowed_mean_wait(np.array([400.0]), np.array([1.0]), 0.95)
    assert tail.allowed_mean_wait(np.array([-10.0]), np.array([1.0]), 0.95) is None
