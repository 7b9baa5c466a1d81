"""A planner given no profile, in Dynamo's replay engine on a DEV slice (the first 5 minutes of
the mooncake trace at x2, 60 s start-up): it ends sizing from a trusted online fit, with a fleet
and attainment close to the same planner sized from the profile the workers were measured with."""

from __future__ import annotations

import pytest

from dynamo_scaling.traces import read_trace, scale_rate, window
from scaler.profile import bundled_profile
from scaler.replay.runner import Setting, run_policy
from scaler.replay.scoring import feasible_keys, score


@pytest.fixture(scope="module")
def runs(traces_dir):
    reqs = scale_rate(window(read_trace(traces_dir / "mooncake_synthetic.jsonl"), 0.0, 300.0), 2.0, seed=1)
    setting = Setting("mooncake[0-300s] x2", reqs, bundled_profile(), startup_s=60.0)
    out = {n: run_policy(setting, n) for n in ("ceiling", "predictive", "predictive-online")}
    feasible = feasible_keys(out["ceiling"])
    return out, {n: score(out[n], setting.trace_name, feasible) for n in ("predictive", "predictive-online")}


def test_online_planner_ends_trusted_near_the_profiled_fleet(runs):
    out, rows = runs
    timeline = out["predictive-online"].timeline
    assert "not yet trusted: load path only" in timeline[0].reason  # it starts knowing nothing
    assert timeline[-1].reason.endswith(", trusted"), timeline[-1].reason
    base, online = rows["predictive"], rows["predictive-online"]
    # bounds from docs/planner.md ("No profile: the online fit"): within 30 % of the profiled
    # planner's GPU-hours and 3 points of its attainment
    assert 0.7 * base["gpu_hours"] <= online["gpu_hours"] <= 1.3 * base["gpu_hours"], (base, online)
    assert online["feasible_attainment"] >= base["feasible_attainment"] - 0.03, (base, online)
