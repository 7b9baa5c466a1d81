"""The online profile fit (scaler/planner/online_fit.py) on observations generated from the bundled
mocker profile: it recovers the profile's idle TTFT and per-worker throughput, stays bounded on
garbage, is not trusted on too little, and the planner says which path sized each decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaler.planner.config import PlannerConfig
from scaler.planner.online_fit import FitSettings, OnlineFit
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

PROFILE = bundled_profile()
DT = 5.0
CONTEXT = 4000.0  # decode windows: ISL 3900 + OSL 200 / 2


def _idle(t: float, isl: float, ttft: float, kv: float, itl: float, workers: int = 4) -> Observation:
    """A window without a prefill queue at light load, with decode KV usage `kv`."""
    cap = PROFILE.decode.max_kv_tokens
    return Observation(t, TrafficWindow(DT, 10, isl, 200.0, ttft, itl),
                       PoolObservation(active=workers, running_requests=1, active_tokens=int(isl)),
                       PoolObservation(active=2, running_requests=5, active_tokens=int(kv * cap * 2), kv_usage=kv))


def _saturated(t: float, backlog: float, isl: float = 3000.0, workers: int = 2) -> Observation:
    """A window where the prefill queue stayed: it grew by what arrived beyond what the workers served."""
    return Observation(t, TrafficWindow(DT, 60, isl, 200.0, 900.0, None),
                       PoolObservation(active=workers, running_requests=workers, queued_requests=5,
                                       active_tokens=int(isl * workers), queued_tokens=int(backlog)),
                       PoolObservation(active=2))


def synthetic(n: int = 40, seed: int = 0, saturated: int = 6) -> list[Observation]:
    """Idle windows over ISL 1000-8000 (2 % noise, every seventh one queued behind a clump: TTFT
    +80 %) and KV usage 0.02-0.5 at context 4000, then `saturated` windows of a growing queue."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.0
    for i in range(n):
        t += DT
        isl = float(rng.uniform(1000, 8000))
        ttft = PROFILE.prefill.ttft_ms_at(isl) * (1 + rng.normal(0, 0.02)) * (1.8 if i % 7 == 3 else 1.0)
        kv = float(rng.uniform(0.02, 0.5))
        itl = PROFILE.decode.itl_ms_at(kv, CONTEXT) * (1 + rng.normal(0, 0.02))
        out.append(_idle(t, isl, ttft, kv, itl))
    per_worker, backlog = PROFILE.prefill.throughput_per_gpu_at(3000.0), 50_000.0
    for _ in range(saturated):
        t += DT
        backlog += (60 * 3000.0 / DT - 2 * per_worker) * DT  # arrivals over the window less what 2 workers serve
        out.append(_saturated(t, backlog))
    return out


def _fed(observations, settings: FitSettings | None = None) -> OnlineFit:
    fit = OnlineFit(settings or FitSettings())
    for o in observations:
        fit.observe(o)
    return fit


def test_recovers_idle_ttft_and_throughput_of_the_profile():
    fit = _fed(synthetic())
    st = fit.status()
    assert st.trusted
    a, b = st.prefill.coef
    # the profile's secant slope over the ISLs seen, within 10 %; TTFT within 10 % where it was seen
    secant = (PROFILE.prefill.ttft_ms_at(8000) - PROFILE.prefill.ttft_ms_at(1000)) / 7000
    assert b == pytest.approx(secant, rel=0.10)
    fitted = fit.profile()
    for isl in (1500, 3000, 6000):
        assert fitted.prefill.ttft_ms_at(isl) == pytest.approx(PROFILE.prefill.ttft_ms_at(isl), rel=0.10)
    # per-worker throughput from the saturated windows within 2 %
    assert st.throughput_from == "saturated windows"
    assert fitted.prefill.throughput_per_gpu_at(3000) == pytest.approx(PROFILE.prefill.throughput_per_gpu_at(3000),
                                                                       rel=0.02)
    # KV capacity per worker exactly (it is counted, not fitted); ITL within 15 % inside the range seen
    assert fitted.decode.max_kv_tokens == pytest.approx(PROFILE.decode.max_kv_tokens, rel=1e-3)
    for kv in (0.1, 0.3):
        assert fitted.decode.itl_ms_at(kv, CONTEXT) == pytest.approx(PROFILE.decode.itl_ms_at(kv, CONTEXT), rel=0.15)


def test_without_saturated_windows_throughput_comes_from_the_ttft_slope():
    fit = _fed(synthetic(saturated=0))
    st = fit.status()
    assert st.throughput_from == "TTFT slope"
    assert st.prefill_throughput == pytest.approx(FitSettings().slope_share * 1000.0 / st.prefill.coef[1])
    # within 20 % of the profile's saturated throughput (the share is tuned on the mocker)
    assert st.prefill_throughput == pytest.approx(PROFILE.prefill.throughput_per_gpu_at(3000), rel=0.20)


def _without_ttft(o: Observation) -> Observation:
    t = o.traffic
    return Observation(o.now_s, TrafficWindow(t.duration_s, t.num_requests, t.avg_isl, t.avg_osl, None, t.avg_itl_ms),
                       o.prefill, o.decode)


def test_not_trusted_with_too_few_windows():
    s = FitSettings()
    obs = synthetic(n=60, saturated=0)
    # decode windows aplenty, but TTFT measured in too few (those with a first token in the window)
    few = obs[:s.min_prefill_windows - 1] + [_without_ttft(o) for o in obs[s.min_prefill_windows - 1:]]
    fit = _fed(few)
    assert fit.status().decode.kept >= s.min_decode_windows
    assert not fit.trusted and fit.status().trusted_at_s is None
    enough = obs[:s.min_prefill_windows + 8] + [_without_ttft(o) for o in obs[s.min_prefill_windows + 8:]]
    assert _fed(enough).trusted  # the same windows, enough of them with a TTFT
    # and too few windows in all
    assert not _fed(obs[:s.min_decode_windows - 1]).trusted


def test_not_trusted_without_a_spread_of_prompt_lengths():
    same = [_idle(DT * (i + 1), 3000.0, PROFILE.prefill.ttft_ms_at(3000.0), 0.02 + 0.01 * i,
                  PROFILE.decode.itl_ms_at(0.02 + 0.01 * i, CONTEXT)) for i in range(40)]
    fit = _fed(same)
    assert not fit.trusted  # one ISL says nothing about the slope


GARBAGE = [
    Observation(float("nan"), TrafficWindow(DT, 10, 2000.0, 100.0, 50.0, 8.0), PoolObservation(active=1),
                PoolObservation(active=1, kv_usage=0.1, active_tokens=1000)),
    Observation(1.0, TrafficWindow(DT, 10, float("nan"), float("inf"), float("nan"), float("nan")),
                PoolObservation(active=1), PoolObservation(active=1, kv_usage=float("nan"))),
    Observation(2.0, TrafficWindow(DT, 10, -3000.0, -5.0, -40.0, -2.0), PoolObservation(active=1),
                PoolObservation(active=1, kv_usage=-0.5, active_tokens=-100)),
    Observation(2.5, TrafficWindow(DT, 10, 3000.0, 100.0, float("nan"), float("inf")), PoolObservation(active=1),
                PoolObservation(active=1, kv_usage=0.1, active_tokens=200_000)),
    Observation(2.6, TrafficWindow(DT, 10, 3000.0, 100.0, float("inf"), -8.0), PoolObservation(active=1),
                PoolObservation(active=1, kv_usage=0.1, active_tokens=200_000)),
    Observation(2.7, TrafficWindow(DT, 10, 3000.0, 100.0, -80.0, float("nan")), PoolObservation(active=1),
                PoolObservation(active=1, kv_usage=0.1, active_tokens=200_000)),
    Observation(3.0, TrafficWindow(DT, 10, 3000.0, 100.0, 80.0, 8.0), PoolObservation(active=0),
                PoolObservation(active=0, kv_usage=0.3, active_tokens=100000)),
    Observation(4.0, TrafficWindow(0.0, 10, 3000.0, 100.0, 1e-9, 1e9), PoolObservation(active=3, queued_requests=2,
                                                                                    queued_tokens=10**9),
                PoolObservation(active=2, kv_usage=1e-9, active_tokens=10**12)),
    Observation(5.0, TrafficWindow(DT, 10, 3000.0, 100.0, 80.0, 8.0),
                PoolObservation(active=3, queued_requests=2, queued_tokens=-10**9),
                PoolObservation(active=2, kv_usage=2.0, active_tokens=10)),
]


def test_garbage_is_skipped_and_the_fit_stays_bounded():
    fit = _fed(GARBAGE)
    st = fit.status()
    assert not st.trusted and fit.profile() is None
    # garbage among good windows: the good ones still give the profile, every coefficient in bounds
    fit = _fed(GARBAGE + synthetic() + GARBAGE)
    st = fit.status()
    s = fit.settings
    assert st.trusted
    a, b = st.prefill.coef
    assert a >= 0 and b >= s.min_slope and all(c >= 0 and math.isfinite(c) for c in st.decode.coef)
    assert s.min_throughput <= st.prefill_throughput <= s.max_throughput
    assert s.min_capacity <= st.kv_capacity <= s.max_capacity
    assert fit.profile().prefill.ttft_ms_at(3000) == pytest.approx(PROFILE.prefill.ttft_ms_at(3000), rel=0.10)


def test_kv_capacity_weighs_each_window_by_the_kv_it_holds():
    # the tokens-held and KV-usage series are scraped at different instants: a window of three
    # requests read as four is a third off, one of forty read as forty-one a fortieth
    cap, per_request = PROFILE.decode.max_kv_tokens, 3000.0
    obs = []
    for i in range(20):
        held = 3 if i % 5 < 3 else 40
        seen = held + 1 if held == 3 else held + (1 if i % 2 else -1)
        kv = held * per_request / cap
        obs.append(_idle(DT * (i + 1), 3000.0, 200.0, kv, 20.0))
        obs[-1] = Observation(obs[-1].now_s, obs[-1].traffic, obs[-1].prefill,
                              PoolObservation(active=1, running_requests=held, active_tokens=int(seen * per_request),
                                              kv_usage=kv))
    assert _fed(obs).kv_capacity() == pytest.approx(cap, rel=0.05)
    # a stale series reading ten times the tokens is left out
    stale = Observation(DT * 21, obs[0].traffic, obs[0].prefill,
                        PoolObservation(active=1, running_requests=40, active_tokens=int(400 * per_request),
                                        kv_usage=40 * per_request / cap))
    assert _fed(obs + [stale]).kv_capacity() == pytest.approx(cap, rel=0.05)
    # nor are windows with a decode queue: the tokens counted include requests not admitted yet
    queued = [Observation(DT * (22 + i), obs[0].traffic, obs[0].prefill,
                          PoolObservation(active=1, running_requests=32, queued_requests=30,
                                          active_tokens=int(62 * per_request), kv_usage=32 * per_request / cap))
              for i in range(40)]
    assert _fed(obs + queued).kv_capacity() == pytest.approx(cap, rel=0.05)


def test_slopes_never_go_below_their_bounds():
    # TTFT falling with ISL and ITL falling with KV usage: nonsense, pinned at the bounds
    obs = [_idle(DT * (i + 1), 1000.0 + 200 * i, 100.0 - i, 0.02 + 0.01 * i, 20.0 - 0.2 * i) for i in range(30)]
    st = _fed(obs).status()
    assert st.prefill.coef[0] >= 0 and st.prefill.coef[1] >= FitSettings().min_slope
    assert min(st.decode.coef) >= 0


def _planner_obs(o: Observation) -> Observation:
    return Observation(o.now_s, o.traffic, o.prefill, o.decode)


def test_planner_sizes_from_the_load_path_until_the_fit_is_trusted():
    planner = PredictivePlanner(None, PlannerConfig(startup_s=60.0))
    obs = synthetic()
    first = planner.decide(obs[0])
    assert planner.profile is None
    assert "; profile: online fit, 2 windows, not yet trusted: load path only (waiting for idle TTFT" in first.reason
    assert first.details.fit_trusted == 0.0 and first.details.fit_windows == 2.0
    # the load path alone: the prompt tokens arriving now over what a worker serves, no forecast headroom
    st = planner.fit_status
    assert first.details.prefill_need == pytest.approx(10 / DT * obs[0].traffic.avg_isl / st.prefill_throughput)
    for o in obs[1:8]:
        d = planner.decide(o)
    # curves exist by now, but too few windows: still the load path, nothing sized from the curves
    assert planner.fit.profile() is not None and not planner.fit_status.trusted and planner.profile is None
    assert d.details.prefill_need == pytest.approx(10 / DT * planner.isl.value  # the smoothed mean prompt
                                                   / planner.fit_status.prefill_throughput)
    assert "not yet trusted: load path only" in d.reason and d.details.fit_trusted == 0.0
    last = None
    for o in obs[8:]:
        last = planner.decide(o)
    assert last.reason.endswith(", trusted") and last.details.fit_trusted == 1.0
    assert planner.profile is not None and planner.profile.source.startswith("online fit")


def test_profile_fit_online_ignores_a_given_profile():
    planner = PredictivePlanner(bundled_profile(), PlannerConfig(profile_fit="online"))
    d = planner.decide(synthetic()[0])
    assert planner.profile is None and "not yet trusted: load path only" in d.reason
    profiled = PredictivePlanner(bundled_profile(), PlannerConfig())
    d = profiled.decide(synthetic()[0])
    assert "online fit" not in d.reason and d.details.fit_trusted is None


def _without_kv_tokens(o: Observation) -> Observation:
    d = o.decode
    return Observation(o.now_s, o.traffic, o.prefill,
                       PoolObservation(active=d.active, running_requests=d.running_requests, kv_usage=d.kv_usage))


def test_an_untrusted_fit_says_what_it_is_waiting_for():
    s = FitSettings()
    few = _fed(synthetic(n=5, saturated=0)).status()
    assert not few.trusted
    assert f"idle TTFT windows 5/{s.min_prefill_windows}" in few.waiting_for
    assert f"ITL windows with KV usage 5/{s.min_decode_windows}" in few.waiting_for
    assert "waiting for idle TTFT windows 5/" in few.describe()

    same = [_idle(DT * (i + 1), 3000.0, PROFILE.prefill.ttft_ms_at(3000.0), 0.02 + 0.01 * i,
                  PROFILE.decode.itl_ms_at(0.02 + 0.01 * i, CONTEXT)) for i in range(40)]
    assert any(w.startswith("prompt lengths spanning x1.3 (seen x1.00)") for w in _fed(same).status().waiting_for)

    # without the KV tokens held (live: no KV router) the decode side can never be trusted: say how to fix it
    blind = _fed([_without_kv_tokens(o) for o in synthetic()]).status()
    assert not blind.trusted
    assert [w for w in blind.waiting_for if "KV tokens held 0/" in w and "--router-mode kv" in w]

    trusted = _fed(synthetic()).status()
    assert trusted.trusted and trusted.waiting_for == ()
    assert "waiting" not in trusted.describe()
