"""The predictive planner on the tail model of need, decision by decision: it sizes prefill from
the prompt lengths it is fed (not only their mean), and with bursts=mix holds capacity for the
recent bursts, reports it, and releases it once they stop. Pure: observations built by hand."""

from __future__ import annotations

import pytest

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0


def obs(t: float, rate: float, isl: float = 2000.0, prefill: int = 4) -> Observation:
    n = int(rate * STEP)
    return Observation(t, TrafficWindow(STEP, n, isl if n else None, 50.0 if n else None, 100.0 if n else None,
                                        10.0 if n else None), PoolObservation(active=prefill), PoolObservation(active=2))


def planner(**kw) -> PredictivePlanner:
    # the recent-peak headroom and Poisson arrivals unless a test says otherwise: what is measured is the model
    return PredictivePlanner(bundled_profile(), PlannerConfig(**{"startup_s": 60.0, "need_model": "tail",
                                                                 "bursts": "recent_peak", "arrival_ca2": 1.0, **kw}))


def test_a_few_long_prompts_raise_the_prefill_need_beyond_their_mean():
    uniform, spread = planner(), planner()
    for k in range(1, 40):
        n = int(20.0 * STEP)
        uniform.observe_prompts([2900.0] * n)
        spread.observe_prompts([1000.0] * (n - n // 10) + [20000.0] * (n // 10))  # mean 2900 too
        a, b = uniform.decide(obs(k * STEP, 20.0, 2900.0)), spread.decide(obs(k * STEP, 20.0, 2900.0))
    assert b.details.prefill_need > a.details.prefill_need + 1


def test_without_prompt_lengths_it_sizes_from_the_mean():
    p = planner()
    d = [p.decide(obs(k * STEP, 20.0)) for k in range(1, 20)][-1]
    assert 0 < d.details.prefill_need < 3


def test_mix_bursts_hold_capacity_report_it_and_release_it_once_bursts_stop():
    p = planner(bursts="mix", burst_half_life_s=60.0, peak_window_s=1800.0)
    t, decisions = 0.0, []
    for cycle in range(10):  # a 10 s burst at 80 req/s every two minutes over 5 req/s
        for k in range(24):
            t += STEP
            decisions.append(p.decide(obs(t, 80.0 if k < 2 else 5.0)))
    during = decisions[-1]
    assert during.details.burst_prefill_workers > 1  # held in the gaps, at 5 req/s
    assert "kept for bursts (recent load" in during.reason
    for _ in range(120):  # ten minutes without bursts
        t += STEP
        after = p.decide(obs(t, 5.0))
    assert after.details.prefill_need < during.details.prefill_need - 1
    assert after.details.burst_prefill_workers < 0.5


def test_a_higher_attainment_target_asks_for_more():
    needs = []
    for target in (0.9, 0.99, 0.999):
        p = planner(attainment_target=target)
        for k in range(1, 30):
            p.observe_prompts([1000.0] * 90 + [20000.0] * 10)
            d = p.decide(obs(k * STEP, 20.0, 2900.0))
        needs.append(d.details.prefill_need)
    assert needs == sorted(needs) and needs[0] < needs[-1]


def test_by_default_the_attainment_target_sets_the_fleet():
    needs = []
    for target in (0.9, 0.999):
        p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, attainment_target=target))
        for k in range(1, 30):
            p.observe_prompts([1000.0] * 90 + [20000.0] * 10)
            d = p.decide(obs(k * STEP, 20.0, 2900.0))
        needs.append(d.details.prefill_need)
    assert needs[0] < needs[1]


def test_live_isl_histogram_increases_feed_the_same_model():
    # what the frontend's dynamo_frontend_input_sequence_tokens_bucket increased by in a window
    short_only, with_long = planner(), planner()
    for k in range(1, 30):
        short_only.observe_prompt_histogram({1024.0: 100.0, 32768.0: 100.0, float("inf"): 100.0})
        with_long.observe_prompt_histogram({1024.0: 90.0, 32768.0: 100.0, float("inf"): 100.0})
        a = short_only.decide(obs(k * STEP, 20.0, 1000.0))
        b = with_long.decide(obs(k * STEP, 20.0, 1000.0))
    assert b.details.prefill_need > a.details.prefill_need + 1


def test_long_prompts_with_a_cached_prefix_are_sized_for_when_asked():
    # a tenth of the prompts are 40k tokens (0.83 s on an idle worker: beyond the 500 ms target)
    # with all but 1k cached before: in reach only while the prefix is still in a worker's cache
    needs = {}
    for mode in ("ignore", "lru"):
        for age in (1.0, 600.0):
            p = planner(prefix_cache=mode)
            for k in range(1, 40):
                n = int(20.0 * STEP)
                p.observe_prompts([1000.0] * (n - n // 10) + [40000.0] * (n // 10),
                                  [(0, None)] * (n - n // 10) + [(39000, age)] * (n // 10))
                d = p.decide(obs(k * STEP, 20.0, 4900.0))
            needs[mode, age] = d.details.prefill_need
            reuse = p.prompts.mix().reuse
            assert reuse is None if mode == "ignore" else reuse.share == pytest.approx(0.1)
    assert needs["ignore", 1.0] == needs["ignore", 600.0]
    # reused within a second: any fleet keeps it; after ten minutes: more workers, to keep it longer
    assert needs["lru", 1.0] <= needs["ignore", 1.0]
    assert needs["lru", 600.0] > needs["ignore", 600.0] + 1
    # only a prefix that brings the prompt within reach binds it: with 5k of 40k cached it still
    # takes too long, a short prompt is in reach anyway, and a prompt with nothing cached has no age
    p = planner(prefix_cache="lru")
    p.observe_prompts([40000.0, 40000.0, 40000.0, 1000.0, 40000.0],
                      [(39000, 5.0), (5000, 5.0), (35000, 5.0), (900, 5.0), (0, None)])
    p.decide(obs(STEP, 1.0))
    assert p.prompts.mix().reuse.share == pytest.approx(0.4)


def test_round_robin_routing_sizes_for_short_prompts_queued_behind_long_ones_on_their_worker():
    pooled, dealt = planner(prefill_routing="pooled"), planner(prefill_routing="round_robin")
    larger = planner(prefill_routing="larger")
    for k in range(1, 40):
        n = int(40.0 * STEP)
        for p in (pooled, dealt, larger):
            p.observe_prompts([1000.0] * (n - n // 10) + [20000.0] * (n // 10))
        a, b, c = (p.decide(obs(k * STEP, 40.0, 2900.0)) for p in (pooled, dealt, larger))
    assert b.details.prefill_need >= a.details.prefill_need + 2
    assert b.details.prefill_need == int(b.details.prefill_need)  # whole workers
    assert c.details.prefill_need == max(a.details.prefill_need, b.details.prefill_need)


def test_arrival_clumping_defaults_to_the_value_calibrated_for_each_prefill_model():
    assert PlannerConfig().effective_arrival_ca2() == 9.0
    assert PlannerConfig(prefill_routing="round_robin").effective_arrival_ca2() == 2.0
    assert PlannerConfig(prefill_routing="larger").effective_arrival_ca2("round_robin") == 2.0
    assert PlannerConfig(prefill_routing="round_robin", arrival_ca2=1.0).effective_arrival_ca2() == 1.0
    with pytest.raises(ValueError, match="prefill_routing"):
        PlannerConfig(prefill_routing="random")
    with pytest.raises(ValueError, match="arrival_ca2"):
        PlannerConfig(arrival_ca2=-1.0)


def test_a_clump_is_carried_as_a_trend_only_as_far_as_trend_horizon_s():
    # 2 minutes' start-up: one 5 s clump at 200 req/s after 20 req/s is, to Holt, a steep rise
    far = planner(bursts="mix", startup_s=120.0, arrival_ca2=9.0, trend_horizon_s=300.0)
    near = planner(bursts="mix", startup_s=120.0, arrival_ca2=9.0)  # the default: 30 s
    for p in (far, near):  # eight workers running: what the queue is missing now does not decide
        for k in range(1, 60):
            p.decide(obs(k * STEP, 20.0, prefill=8))
    a, b = far.decide(obs(60 * STEP, 200.0, prefill=8)), near.decide(obs(60 * STEP, 200.0, prefill=8))
    assert a.details.horizon_s == b.details.horizon_s == pytest.approx(125.0)
    assert b.details.forecast_rate < a.details.forecast_rate - 50
    assert b.details.prefill_need < a.details.prefill_need
