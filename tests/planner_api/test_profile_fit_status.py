"""What reads the live planner's profile copes with a planner that has none yet (no profile file:
the online fit): the SLA counts skip the unreachable count and the what-if answers 409 naming
the fit's windows until the fit is trusted; then both use the fitted profile (its idle TTFT
a + b x ISL). The status shows the fit's state. Planners fed observations generated from the
bundled mocker profile."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile
from scaler.service.deployment import DeploymentPlanner
from scaler.whatif.api import no_profile

PROFILE = bundled_profile()


def windows(n: int, seed: int = 0) -> list[Observation]:
    """Light-load windows over ISL 1000-8000 and KV usage 0.02-0.5, latencies from the profile."""
    rng = np.random.default_rng(seed)
    cap = PROFILE.decode.max_kv_tokens
    out = []
    for i in range(n):
        isl, kv = float(rng.uniform(1000, 8000)), float(rng.uniform(0.02, 0.5))
        out.append(Observation(5.0 * (i + 1), TrafficWindow(5.0, 10, isl, 200.0, PROFILE.prefill.ttft_ms_at(isl),
                                                            PROFILE.decode.itl_ms_at(kv, 4000.0)),
                               PoolObservation(active=4, running_requests=1),
                               PoolObservation(active=2, running_requests=5, active_tokens=int(kv * cap * 2),
                                               kv_usage=kv)))
    return out


def deployment(planner: PredictivePlanner, observations) -> SimpleNamespace:
    for o in observations:
        planner.decide(o)
    return SimpleNamespace(policy=planner)


def test_until_trusted_there_is_no_profile_to_count_or_replay_with():
    d = deployment(PredictivePlanner(None), windows(4))
    assert d.policy.profile is None and not d.policy.fit_status.trusted
    assert DeploymentPlanner.unloaded_ttft_ms(d) is None
    n = d.policy.fit_status.windows
    assert n >= 4
    assert no_profile(d) == f"no performance profile yet: the online fit is not trusted ({n} windows)"
    fit = DeploymentPlanner.profile_fit(d)
    assert fit["windows"] == n and fit["trusted"] is False and fit["kv_capacity_tokens"] == pytest.approx(
        PROFILE.decode.max_kv_tokens, rel=0.01)
    # what trust still lacks, as the operator reads it in the status
    assert fit["waiting_for"] == list(d.policy.fit_status.waiting_for) and any(
        w.startswith("idle TTFT windows ") for w in fit["waiting_for"]), fit


def test_once_trusted_the_fitted_profile_is_used():
    d = deployment(PredictivePlanner(None), windows(40))
    assert d.policy.fit_status.trusted
    assert no_profile(d) is None
    a, b = d.policy.fit_status.prefill.coef
    ttft = DeploymentPlanner.unloaded_ttft_ms(d)
    for isl in (1000.0, 4000.0, 8000.0):
        assert ttft(isl) == pytest.approx(a + b * isl, rel=1e-6)
        assert ttft(isl) == pytest.approx(PROFILE.prefill.ttft_ms_at(isl), rel=0.10)
    fit = DeploymentPlanner.profile_fit(d)
    assert fit["trusted"] is True and fit["idle_ttft_ms"] == {"a": a, "b_per_token": b} and fit["waiting_for"] == []


def test_a_given_profile_is_used_as_it_is():
    d = deployment(PredictivePlanner(PROFILE), windows(2))
    assert no_profile(d) is None and DeploymentPlanner.profile_fit(d) is None
    assert DeploymentPlanner.unloaded_ttft_ms(d)(3000.0) == PROFILE.prefill.ttft_ms_at(3000.0)
