"""How the policies rank on the embedded demo's slice (the bundled 20 minutes of Azure code
traffic at x5, 60 s start-up), in Dynamo's replay engine. Relations, not numbers: what
`scripts/demo` shows a newcomer must hold whatever the machine."""

from __future__ import annotations

import pytest

from scaler.profile import bundled_profile
from scaler.replay.runner import Setting, compare
from dynamo_scaling.traces import read_trace, scale_rate
from scaler.demo.cli import DEFAULT_TRACE


@pytest.fixture(scope="module")
def ranked() -> dict[str, dict]:
    setting = Setting("demo slice", scale_rate(read_trace(DEFAULT_TRACE), 5.0), bundled_profile(), startup_s=60.0)
    rows, _ = compare(setting, ["predictive", "hpa", "static", "dynamo-load", "dynamo-throughput"])
    return {r["planner"]: r for r in rows}


def test_predictive_dominates_the_hpa(ranked):
    p, h = ranked["predictive"], ranked["hpa"]
    assert p["feasible_attainment"] > h["feasible_attainment"], (p, h)
    assert p["gpu_hours"] < h["gpu_hours"], (p, h)


def test_predictive_attains_more_than_dynamos_rule_based_planners(ranked):
    for name in ("dynamo-load", "dynamo-throughput"):
        assert ranked["predictive"]["feasible_attainment"] > ranked[name]["feasible_attainment"], ranked[name]

