"""Decision diagnostics: typed for the code, and the same JSON as the plain dict they replaced
for the REST answers and the policy's status."""

from __future__ import annotations

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Diagnostics, Observation, PoolObservation, TrafficWindow
from scaler.profile import bundled_profile

PREDICTIVE_KEYS = ["forecast_rate", "rate", "horizon_s", "prefill_need", "decode_need", "prefill_correction",
                   "decode_correction", "startup_estimate_s", "burst_window_s", "burst_rate",
                   "burst_prefill_tokens_s", "burst_prefill_workers", "burst_decode_workers"]


def test_as_dict_holds_the_recorded_numbers_only():
    d = Diagnostics(forecast_rate=2.5, prefill_burn=0.0, budget_limited=True)
    assert d.as_dict() == {"forecast_rate": 2.5, "prefill_burn": 0.0}  # 0 is recorded, None is not, flags are not
    assert Diagnostics().as_dict() == {}


def test_predictive_decision_reports_the_same_keys_as_before():
    planner = PredictivePlanner(bundled_profile(), PlannerConfig(gpu_budget=2))
    obs = Observation(5.0, TrafficWindow(5.0, 200, 3000.0, 100.0, 100.0, 10.0),
                      PoolObservation(active=1, queued_tokens=200_000), PoolObservation(active=1))
    d = planner.decide(obs)
    assert list(d.details.as_dict()) == PREDICTIVE_KEYS  # no burn yet: nothing was counted
    assert all(isinstance(v, float) for v in d.details.as_dict().values())
    # the budget flag is typed, and agrees with what the reason says
    assert d.details.budget_limited and "limited by GPU budget 2" in d.reason
