"""What the planner exports per tick, read from typed fields (the decision's diagnostics, the
tick's mode and blocked pools), not from the wording of the reason."""

from __future__ import annotations

import datetime as dt

import pytest

from scaler.control.state import DecisionRecord
from scaler.service.loop import TickResult
from scaler.service.metrics import PlannerMetrics
from scaler.policy import Decision, Diagnostics

POOLS = {"prefill": 2, "decode": 1}


def tick(written: dict[str, int], mode: str = "active", blocked: dict[str, str] | None = None,
         decision: Decision | None = None) -> TickResult:
    # the reason says nothing the metrics could match on
    record = DecisionRecord(dt.datetime.now(dt.timezone.utc), dict(POOLS), dict(POOLS), bool(written), "x")
    return TickResult(record, decision, written, blocked=blocked or {}, mode=mode)


@pytest.mark.parametrize("result, label", [
    (tick({"prefill": 2}), "written"),
    (tick({}), "unchanged"),
    (tick({}, mode="advisory"), "held"),
    (tick({}, mode="deployment not ready"), "held"),
    (tick({}, blocked={"decode": "HPA hpa-1 targets it"}), "held"),
    (tick({}, blocked={"other": "not a planned pool"}), "unchanged"),
])
def test_decision_outcome_label(result, label):
    m = PlannerMetrics()
    m.record(result)
    assert m.registry.get_sample_value("dynamo_planner_decisions_total", {"outcome": label}) == 1.0


def test_gauges_from_the_diagnostics():
    m = PlannerMetrics()
    d = Diagnostics(forecast_rate=3.5, rate=2.0, prefill_correction=1.2, decode_correction=1.0, startup_estimate_s=42.0)
    m.record(tick({}, decision=Decision(2, 1, 5.0, "x", d)))
    get = m.registry.get_sample_value
    assert get("dynamo_planner_predicted_request_rate") == 3.5 and get("dynamo_planner_observed_request_rate") == 2.0
    assert get("dynamo_planner_correction_factor", {"pool": "prefill"}) == 1.2
    assert get("dynamo_planner_startup_estimate_seconds") == 42.0
    m2 = PlannerMetrics()
    m2.record(tick({}, decision=Decision(2, 1, 5.0, "x")))  # a policy that records nothing sets nothing
    assert m2.registry.get_sample_value("dynamo_planner_predicted_request_rate") == 0.0
    assert m2.registry.get_sample_value("dynamo_planner_correction_factor", {"pool": "prefill"}) is None
