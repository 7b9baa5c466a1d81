"""The predictive planner's two headrooms, decision by decision: with headroom=error_budget the
loop reads the SLA counts of each window; with bursts=rises the burst headroom is drawn from the
rises of load and reported in the decision (so is the recent-peak floor of the defaults). Pure:
the observations are built by hand, with the bundled profile."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, SLOCounts, TrafficWindow
from scaler.profile import bundled_profile

STEP = 5.0


def obs(t: float, rate: float, slo: SLOCounts | None, prefill: int = 4, avg_ttft_ms: float = 100.0,
        isl: float = 2000.0) -> Observation:
    n = int(rate * STEP)
    return Observation(t, TrafficWindow(STEP, n, isl if n else None, 50.0 if n else None,
                                        avg_ttft_ms if n else None, 10.0 if n else None, slo),
                       PoolObservation(active=prefill), PoolObservation(active=2))


def run(planner: PredictivePlanner, windows: list[tuple[float, SLOCounts | None]], start: int = 0, **kw) -> list:
    """One decision per window, every STEP seconds from the `start`-th window on."""
    return [planner.decide(obs((start + k + 1) * STEP, rate, slo, **kw)) for k, (rate, slo) in enumerate(windows)]


def planner(**kw) -> PredictivePlanner:
    settings = {"startup_s": 60.0, "headroom": "error_budget", "bursts": "rises", "max_correction": 3.0,
                "peak_window_s": 1800.0, **kw}
    return PredictivePlanner(bundled_profile(), PlannerConfig(**settings))


def test_misses_under_load_the_fleet_was_sized_for_raise_the_prefill_headroom():
    decisions = run(planner(), [(10.0, SLOCounts(50, 5, 0, 0))] * 40)  # 10% missed, target 0.99
    assert decisions[0].details.prefill_correction == 1.0
    assert decisions[-1].details.prefill_correction > 1.0
    assert any((d.details.prefill_burn or 0.0) > 1.5 for d in decisions)  # reported while counted
    assert "headroom x" in decisions[-1].reason


def test_meeting_the_target_keeps_the_headroom():
    decisions = run(planner(), [(10.0, SLOCounts(50, 0, 0, 0))] * 40)
    assert all(d.details.prefill_correction == 1.0 for d in decisions)


def test_misses_of_prompts_no_worker_can_serve_in_time_do_not_raise_it():
    decisions = run(planner(), [(10.0, SLOCounts(50, 5, 0, 5))] * 40)  # every miss unreachable
    assert all(d.details.prefill_correction == 1.0 for d in decisions)


def test_misses_while_load_exceeds_the_running_fleet_are_left_to_the_burst_headroom():
    # one prefill worker under 60 req/s of 8k prompts: far more than it was sized for
    decisions = run(planner(), [(60.0, SLOCounts(300, 150, 0, 0))] * 40, prefill=1, isl=8000.0)
    assert all(d.details.prefill_correction == 1.0 for d in decisions)


def test_itl_misses_raise_the_decode_headroom():
    decisions = run(planner(), [(10.0, SLOCounts(50, 0, 5, 0))] * 40)
    assert decisions[-1].details.decode_correction > 1.0
    assert decisions[-1].details.prefill_correction == 1.0


def test_without_sla_counts_the_mean_latency_correction_still_works():
    p = planner()
    decisions = run(p, [(10.0, None)] * 20, avg_ttft_ms=600.0)  # mean TTFT above the comfort zone
    assert decisions[-1].details.prefill_correction > 1.0
    assert decisions[-1].details.prefill_burn is None


def test_what_is_kept_for_bursts_is_reported_and_released():
    p = planner()
    bursts = ([(40.0, None)] * 3 + [(0.0, None)] * 21) * 8  # 15 s bursts, 105 s gaps
    decisions = run(p, bursts)
    gap = decisions[-1]  # in a gap: the forecast has decayed, the burst headroom holds
    assert gap.details.burst_prefill_workers > 0.5
    assert "kept for bursts" in gap.reason
    quiet = run(p, [(1.0, None)] * 360, start=len(bursts))  # thirty minutes of light, steady traffic
    assert quiet[-1].details.burst_prefill_workers < 0.05
    assert "kept for bursts" not in quiet[-1].reason


def test_by_default_the_mean_latency_sets_the_headroom_even_with_sla_counts():
    p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0))
    assert p.slo_probe_s is None  # so replay does not count for it either
    assert planner().slo_probe_s == 0.1
    decisions = run(p, [(10.0, SLOCounts(50, 5, 0, 0))] * 40)  # misses, but a low mean TTFT
    assert all(d.details.prefill_correction == 1.0 for d in decisions)


def test_with_bursts_recent_peak_the_peak_is_kept_and_reported():
    p = PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, peak_window_s=600.0, bursts="recent_peak"))
    decisions = run(p, [(40.0, None)] * 3 + [(0.0, None)] * 60)  # one burst, five quiet minutes
    assert decisions[-1].details.burst_rate == 40.0
    assert decisions[-1].details.burst_prefill_workers > 0.5
    assert "kept for bursts (peak of 600s)" in decisions[-1].reason
    quiet = run(p, [(0.0, None)] * 80, start=63)  # past the window: released
    assert quiet[-1].details.burst_rate == 0.0


def latency_planner(mode: str) -> PredictivePlanner:
    return PredictivePlanner(bundled_profile(), PlannerConfig(startup_s=60.0, latency_in_bursts=mode))


def test_slow_first_tokens_under_load_the_fleet_serves_raise_the_prefill_headroom_either_way():
    for mode in ("learn", "skip"):
        decisions = run(latency_planner(mode), [(10.0, None)] * 20, prefill=8, avg_ttft_ms=600.0)
        assert decisions[-1].details.prefill_correction > 1.2, mode


def test_slow_first_tokens_in_a_burst_beyond_the_running_fleet_raise_it_only_when_learned():
    # one prefill worker under 60 req/s of 8k prompts: the latency says the load came faster than
    # workers start, not that the profile is optimistic
    burst = [(60.0, None)] * 6
    learned = run(latency_planner("learn"), burst, prefill=1, avg_ttft_ms=3000.0, isl=8000.0)
    skipped = run(latency_planner("skip"), burst, prefill=1, avg_ttft_ms=3000.0, isl=8000.0)
    assert learned[-1].details.prefill_correction > 1.5
    assert all(d.details.prefill_correction == 1.0 for d in skipped)
    assert all(d.details.decode_correction == 1.0 for d in skipped)  # decode learns from ITL as before


def test_after_a_burst_the_skip_holds_for_the_backlog_horizon_then_learns_again():
    p = latency_planner("skip")
    run(p, [(60.0, None)], prefill=1, avg_ttft_ms=3000.0, isl=8000.0)
    draining = run(p, [(0.5, None)] * 5, start=1, prefill=1, avg_ttft_ms=3000.0, isl=8000.0)  # within 30 s
    assert all(d.details.prefill_correction == 1.0 for d in draining)
    later = run(p, [(0.5, None)] * 10, start=6, prefill=1, avg_ttft_ms=3000.0, isl=8000.0)
    assert later[-1].details.prefill_correction > 1.2


def test_a_headroom_learned_for_an_optimistic_profile_does_not_itself_read_as_a_burst():
    # 8 workers serve 154 req/s of 2k prompts by the profile, 77 at a headroom of 2: 100 req/s is
    # load the fleet serves, and latency there says the profile is optimistic
    p = latency_planner("skip")
    decisions = run(p, [(100.0, None)] * 60, prefill=8, avg_ttft_ms=2000.0)
    assert decisions[-1].details.prefill_correction > 1.9


def test_latency_in_bursts_refuses_an_unknown_mode():
    import pytest
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="latency_in_bursts"):
        PlannerConfig(latency_in_bursts="sometimes")


def _light_long_prompts(scales: str, missed: int = 2) -> list:
    # 3 req/s of 12k-token prompts (under one worker's work), a tenth of them missing: as on a
    # conversation trace routed round robin, where a long prompt behind another misses
    p = planner(headroom_scales=scales, bursts="mix", max_correction=2.0)
    return run(p, [(3.0, SLOCounts(15, missed, 0, 0))] * 200, prefill=4, isl=12000.0)


def test_a_headroom_on_workers_multiplies_the_prefill_fleet_where_one_on_the_rate_barely_moves_it():
    met = _light_long_prompts("workers", missed=0)[-1]
    by_rate, by_workers = _light_long_prompts("rate")[-1], _light_long_prompts("workers")[-1]
    assert met.details.prefill_correction == 1.0
    assert by_rate.details.prefill_correction == by_workers.details.prefill_correction == 2.0
    assert by_rate.target_prefill <= met.target_prefill + 1
    assert by_workers.target_prefill >= 2 * met.target_prefill - 1  # 2 x a need below it, rounded up
    assert by_workers.target_prefill >= by_rate.target_prefill + 2


def test_a_burn_cap_per_window_reaches_the_loop_and_is_checked_against_its_threshold():
    p = planner(burn_cap_per_window=3.0)
    assert p.prefill_budget.window_cap == p.decode_budget.window_cap == 3.0
    assert planner().prefill_budget.window_cap is None  # by default every miss counts


def test_a_burn_cap_too_low_to_ever_raise_is_refused_naming_the_field():
    import pytest
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="burn_cap_per_window must be above"):
        PlannerConfig(burn_cap_per_window=1.2)


def signal_planner(**kw) -> PredictivePlanner:
    return planner(headroom="mean_latency", **kw)


def test_long_prompts_whose_own_prefill_fills_the_comfort_zone_raise_only_the_ttft_signal():
    # 14k-token prompts take about 295 ms on an idle worker; 25 ms of waiting on top meets 500 ms
    # for nearly every one, yet the mean TTFT is above half the target
    idle = bundled_profile().prefill.ttft_ms_at(14000.0)
    windows = [(2.0, None)] * 30
    by_ttft = run(signal_planner(), windows, isl=14000.0, avg_ttft_ms=idle + 25.0)
    by_wait = run(signal_planner(headroom_signal="wait"), windows, isl=14000.0, avg_ttft_ms=idle + 25.0)
    assert by_ttft[-1].details.prefill_correction > 1.5
    assert all(d.details.prefill_correction == 1.0 for d in by_wait)


def test_a_wait_that_leaves_prompts_no_room_raises_the_wait_signal():
    idle = bundled_profile().prefill.ttft_ms_at(14000.0)
    decisions = run(signal_planner(headroom_signal="wait"), [(2.0, None)] * 30, isl=14000.0,
                    avg_ttft_ms=idle + 150.0)
    assert decisions[-1].details.prefill_correction > 1.5


def test_the_wait_allowed_shrinks_as_the_target_rises():
    # 50 ms mean wait on 205 ms of slack: enough for 0.95 (exponential waits: 205 / ln 20 = 68 ms),
    # not for 0.99 (205 / ln 100 = 45 ms)
    idle = bundled_profile().prefill.ttft_ms_at(14000.0)
    at = {target: run(signal_planner(headroom_signal="wait", attainment_target=target), [(2.0, None)] * 30,
                      isl=14000.0, avg_ttft_ms=idle + 50.0)[-1].details.prefill_correction
          for target in (0.95, 0.99)}
    assert at[0.95] == 1.0
    assert at[0.99] > 1.0


def test_the_wait_signal_is_a_choice_the_config_names():
    with pytest.raises(ValidationError, match="headroom_signal"):
        PlannerConfig(headroom_signal="median")
