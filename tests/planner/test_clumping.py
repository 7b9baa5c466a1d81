"""Arrival clumping measured from request counts (scaler/planner/clumping.py), and the planner
using it with a spare prefill worker. Pure: counts drawn from seeded generators, observations by hand."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from scaler.planner.clumping import MIN_PAIRS, ClumpingEstimate
from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Decision, Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0


def fed(counts, duration_s: float = STEP, step_s: float = STEP) -> ClumpingEstimate:
    est = ClumpingEstimate()
    for k, n in enumerate(counts, 1):
        est.observe(k * step_s, duration_s, float(n))
    return est


def test_poisson_counts_read_about_one():
    rng = np.random.default_rng(3)
    values = [fed(rng.poisson(20.0, 61)).value(0.0, 100.0) for _ in range(40)]
    assert 0.7 < float(np.median(values)) < 1.4


def test_clumped_counts_read_their_clump_size():
    # clumps of 10 requests arriving as Poisson: the counts' index of dispersion is about 10
    rng = np.random.default_rng(4)
    values = [fed(10 * rng.poisson(6.0, 61)).value(0.0, 100.0) for _ in range(40)]
    assert 7.0 < float(np.median(values)) < 13.0


def test_a_step_in_rate_does_not_read_as_clumping():
    rng = np.random.default_rng(5)
    counts = np.concatenate([rng.poisson(15.0, 30), rng.poisson(150.0, 31)])  # 3 -> 30 req/s
    assert fed(counts).value(1.0, 100.0) < 2.0


def test_until_enough_pairs_the_upper_bound_holds_and_the_value_is_clamped():
    assert fed([20] * MIN_PAIRS).value(1.0, 9.0) == 9.0  # MIN_PAIRS windows give one pair fewer
    assert fed([20] * (MIN_PAIRS + 1)).value(1.0, 9.0) == 1.0  # identical counts read 0, clamped up
    assert fed([0, 400] * 40).value(1.0, 9.0) == 9.0  # wildly clumped, clamped down


def test_overlapping_windows_pair_only_disjoint_ones():
    # live: a 10 s rate window every 5 s; each window must be compared with the one two back
    rng = np.random.default_rng(6)
    paired, naive = [], []
    for _ in range(40):
        halves = rng.poisson(10.0, 80)
        overlapping = halves[1:] + halves[:-1]
        paired.append(fed(overlapping, duration_s=2 * STEP).value(0.0, 100.0))
        # the same windows taken as if disjoint: neighbours share half their requests
        naive.append(fed(overlapping, duration_s=2 * STEP, step_s=2 * STEP).value(0.0, 100.0))
    assert 0.7 < float(np.median(paired)) < 1.4
    assert float(np.median(naive)) < 0.7


def test_live_windows_a_little_apart_are_still_paired():
    # live: 10 s windows read every 5.4 s (the interval plus the decision's own time)
    rng = np.random.default_rng(9)
    values = []
    for _ in range(40):
        est, t, arrivals = ClumpingEstimate(), 0.0, np.cumsum(rng.exponential(0.25, 4000))
        for _k in range(80):
            t += 5.4
            if t >= 10.0:
                est.observe(t, 10.0, float(np.count_nonzero((arrivals > t - 10.0) & (arrivals <= t))))
        assert est.measured >= MIN_PAIRS
        values.append(est.value(0.0, 100.0))
    assert 0.7 < float(np.median(values)) < 1.4


def test_windows_of_other_lengths_or_with_gaps_are_not_paired():
    est = ClumpingEstimate()
    est.observe(5.0, 5.0, 10.0)
    est.observe(15.0, 5.0, 30.0)   # a gap of 5 s: not adjacent
    est.observe(25.0, 10.0, 60.0)  # adjacent but twice as long
    est.observe(30.0, 5.0, 12.0)   # starts where the 10 s one ends, lengths differ
    assert est.measured == 0
    est.observe(35.0, 5.0, 14.0)
    assert est.measured == 1


def obs(t: float, n: int, prefill: int = 2) -> Observation:
    return Observation(t, TrafficWindow(STEP, n, 2000.0 if n else None, 200.0 if n else None, 100.0 if n else None,
                                        10.0 if n else None), PoolObservation(active=prefill), PoolObservation(active=2))


def run(counts, **settings) -> tuple[PredictivePlanner, Decision]:
    """The planner after deciding on every count, and its last decision."""
    p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, **settings))
    decisions = [p.decide(obs(k * STEP, int(n))) for k, n in enumerate(counts, 1)]
    return p, decisions[-1]


def test_measured_clumping_sizes_poisson_traffic_below_the_fixed_default():
    counts = np.random.default_rng(7).poisson(100.0, 80)  # 20 req/s, Poisson
    fixed, fixed_d = run(counts, arrival_clumping="fixed")
    measured, measured_d = run(counts, arrival_clumping="measured")
    assert fixed.arrival_ca2() == 9.0
    assert 0.5 < measured.arrival_ca2() < 2.0
    assert measured_d.details.prefill_need < fixed_d.details.prefill_need
    assert "arrival clumping" in measured_d.reason


def test_measured_clumping_is_bounded_by_arrival_ca2():
    counts = 40 * np.random.default_rng(8).poisson(2.5, 80)  # clumps of 40
    assert run(counts, arrival_clumping="measured")[0].arrival_ca2() == 9.0
    assert run(counts, arrival_clumping="measured", arrival_ca2=4.0)[0].arrival_ca2() == 4.0


def test_above_fixed_raises_clumping_for_clumped_traffic_and_only_up_to_its_bound():
    counts = 20 * np.random.default_rng(8).poisson(5.0, 80)  # clumps of 20
    fixed, fixed_d = run(counts, arrival_clumping="fixed")
    above, above_d = run(counts, arrival_clumping="above_fixed")
    assert 14.0 < above.arrival_ca2() < 26.0
    assert above_d.details.prefill_need > fixed_d.details.prefill_need
    assert "arrival clumping" in above_d.reason
    assert run(counts, arrival_clumping="above_fixed", arrival_ca2_max=12.0)[0].arrival_ca2() == 12.0


def test_above_fixed_never_sizes_below_the_fixed_clumping():
    counts = np.random.default_rng(7).poisson(100.0, 80)  # Poisson: reads about 1
    fixed, fixed_d = run(counts, arrival_clumping="fixed")
    above, above_d = run(counts, arrival_clumping="above_fixed")
    assert above.arrival_ca2() == fixed.arrival_ca2() == 9.0
    assert above_d.details.prefill_need == pytest.approx(fixed_d.details.prefill_need)
    assert run(counts, arrival_clumping="above_fixed", arrival_ca2=3.0)[0].arrival_ca2() == 3.0


def test_above_fixed_holds_the_fixed_clumping_until_measured():
    counts = 40 * np.random.default_rng(8).poisson(2.5, MIN_PAIRS)  # clumped, one pair short
    p, _ = run(counts, arrival_clumping="above_fixed")
    assert p.clumping.measured == MIN_PAIRS - 1
    assert p.arrival_ca2() == 9.0


def test_a_spare_prefill_worker_is_kept_beyond_the_need_and_said():
    counts = [100] * 40
    base, spare = run(counts)[1], run(counts, spare_prefill_workers=1)[1]
    assert spare.details.prefill_need == pytest.approx(base.details.prefill_need + 1)
    assert spare.target_prefill == base.target_prefill + 1
    assert "1 spare prefill" in spare.reason and "spare" not in base.reason


def test_no_need_still_scales_to_zero_with_a_spare():
    p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, min_prefill=0, spare_prefill_workers=1,
                                                           peak_window_s=0))
    d = p.decide(obs(STEP, 0, prefill=0))
    assert d.details.prefill_need == 0


def test_capped_keeps_at_most_the_margin_above_the_measured_need_on_poisson_traffic():
    # 60 req/s Poisson: the fixed clumping of 9 asks several workers more than the measured one (about 1)
    counts = np.random.default_rng(7).poisson(300.0, 80)
    (_, fixed_d), (_, measured_d) = run(counts, arrival_clumping="fixed"), run(counts, arrival_clumping="measured")
    capped, capped_d = run(counts, arrival_clumping="capped")
    assert fixed_d.details.prefill_need > measured_d.details.prefill_need + 1.5
    assert capped_d.details.prefill_need == pytest.approx(measured_d.details.prefill_need + 1.0)
    assert capped.arrival_ca2() == 9.0  # what it sizes with, before the cap
    two = run(counts, arrival_clumping="capped", clumping_margin_workers=2.0)[1]
    assert two.details.prefill_need == pytest.approx(min(fixed_d.details.prefill_need,
                                                         measured_d.details.prefill_need + 2.0))
    assert "at most 1 above the measured clumping" in capped_d.reason


@pytest.mark.parametrize("counts", [
    np.random.default_rng(7).poisson(20.0, 80),  # 4 req/s Poisson: the fixed need is within the margin
    20 * np.random.default_rng(8).poisson(5.0, 80),  # clumps of 20: measured is above 9, clamped to it
    np.random.default_rng(7).poisson(300.0, MIN_PAIRS),  # one pair short of a measurement
], ids=["light", "clumped", "unmeasured"])
def test_capped_is_the_fixed_clumping_where_the_cap_does_not_bind(counts):
    (_, fixed_d), (_, capped_d) = run(counts, arrival_clumping="fixed"), run(counts, arrival_clumping="capped")
    assert capped_d.details.prefill_need == pytest.approx(fixed_d.details.prefill_need)
    assert capped_d.target_prefill == fixed_d.target_prefill


def test_the_margin_sized_at_a_stricter_attainment_keeps_the_second_worker_at_light_load():
    counts = np.random.default_rng(7).poisson(15.0, 80)  # 3 req/s, Poisson
    at95 = run(counts, attainment_target=0.95)[1]
    at99 = run(counts, attainment_target=0.99)[1]
    margin, margin_d = run(counts, attainment_target=0.95, clumping_margin_attainment=0.99)
    assert at95.target_prefill < at99.target_prefill  # without it, 0.95 keeps no worker beyond the need
    assert margin_d.target_prefill == at99.target_prefill
    measured = run(counts, attainment_target=0.95, arrival_clumping="measured")[1]
    assert margin_d.details.prefill_need <= measured.details.prefill_need + 1.0 + 1e-9
    # at a target at least as strict as the margin's, nothing changes
    same = run(counts, attainment_target=0.99, clumping_margin_attainment=0.95)[1]
    assert same.details.prefill_need == pytest.approx(at99.details.prefill_need)
    # only the capped clumping has a margin to size
    fixed = run(counts, attainment_target=0.95, arrival_clumping="fixed", clumping_margin_attainment=0.99)[1]
    assert fixed.details.prefill_need == pytest.approx(run(counts, attainment_target=0.95,
                                                           arrival_clumping="fixed")[1].details.prefill_need)


@pytest.mark.parametrize("settings", [{"arrival_clumping": "sometimes"}, {"spare_prefill_workers": -1},
                                      {"clumping_margin_attainment": 1.0}, {"clumping_margin_attainment": 0.0},
                                      {"clumping_margin_workers": -1},
                                      {"arrival_ca2_max": 0.5},
                                      {"arrival_ca2_max": 5.0, "arrival_clumping": "above_fixed"},
                                      {"arrival_ca2_max": 5.0, "arrival_clumping": "above_fixed", "arrival_ca2": 6.0}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(pydantic.ValidationError) as e:
        PlannerConfig(**settings)
    assert next(iter(settings)) in str(e.value)
