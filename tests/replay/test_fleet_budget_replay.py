"""Two deployments replayed together in Dynamo's replay engine against one tight GPU budget.

The low-priority deployment (Mooncake, wants far more than the budget) has the pool to itself
until the high-priority one's load (Azure code) arrives a minute later: the allocator must then
take GPUs back, and the high-priority deployment may grow only as the other's workers drain."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaler.profile import bundled_profile
from scaler.replay.fleet import FleetSpec, align, compare
from dynamo_scaling.traces import Request, read_trace, scale_rate, window

TRACES = Path(__file__).resolve().parents[2] / "traces"
BUDGET = 8
MIN = (1, 1)  # FleetDeployment's default minimums per pool


def slice_of(fname: str, start: float, seconds: float, rate: float) -> list:
    reqs, _ = align(scale_rate(window(read_trace(TRACES / fname), start, start + seconds), rate, seed=1))
    return reqs


def arriving_late(reqs: list, delay_s: float) -> list:
    """The same load `delay_s` later, after one small request at 0 (the deployment's clock starts
    with the fleet's)."""
    return [Request(0.0, 128, 8)] + [Request(r.timestamp_ms + delay_s * 1000.0, r.input_length, r.output_length,
                                             r.hash_ids) for r in reqs]


@pytest.fixture(scope="module")
def result():
    specs = [FleetSpec("code", arriving_late(slice_of("azure_llm_2023_code.csv", 1200.0, 180.0, 4.0), 60.0),
                       priority=1),
             FleetSpec("chat", slice_of("mooncake_synthetic.jsonl", 600.0, 180.0, 2.0), priority=0)]
    return compare(specs, BUDGET, bundled_profile(), startup_s=60.0)


def test_budget_binds_and_the_engines_run_in_lock_step(result):
    rounds = result["shared"].rounds
    assert len(rounds) > 10
    # the plans together want more than the budget, so the allocator has work to do
    assert any(sum(p + d for p, d in r.wanted.values()) > BUDGET for r in rounds)
    assert any(r.limited for r in rounds)
    # the low-priority deployment had to give GPUs back once the high-priority load arrived
    before = max(sum(r.targets["chat"]) for r in rounds if r.t_s < 60.0)
    after = min(sum(r.targets["chat"]) for r in rounds if 60.0 < r.t_s < 180.0)
    assert after < before
    assert all(r.clock_skew_s == 0 for r in rounds)


def test_gpus_of_all_deployments_never_exceed_the_budget(result):
    rounds = result["shared"].rounds
    assert all(sum(p + d for p, d in r.targets.values()) <= BUDGET for r in rounds)
    assert all(sum(p + d for p, d in r.granted.values()) <= BUDGET for r in rounds)
    # what the engines actually ran (active + starting + draining workers of every deployment)
    steps = result["shared"].gpu_steps()
    over = [(t, g) for t, g in steps if g > BUDGET]
    assert not over, f"fleet above its budget of {BUDGET} GPUs at {over[:5]}"
    assert max(g for _, g in steps) == BUDGET  # and it did use all of it


def test_no_deployment_below_its_minimum(result):
    for r in result["shared"].rounds:
        for name, (p, d) in r.targets.items():
            assert p >= MIN[0] and d >= MIN[1], f"{name} targeted {p}P+{d}D at {r.t_s} s"
    for name, run in result["shared"].runs.items():  # and in the engine: running workers per pool
        for op in run.lifecycle:
            state = op.get("state_after_batch") or {}
            running = len(state.get("active", [])) + len(state.get("starting", []))
            floor = MIN[0] if op.get("pool") == "prefill" else MIN[1]
            assert running >= floor, f"{name} {op.get('pool')} down to {running} at {op.get('at_ms')} ms"


def test_high_priority_does_at_least_as_well_as_under_a_fixed_split(result):
    s = result["summary"]
    shared = s["modes"]["shared"]["deployments"]["code"]["feasible_attainment"]
    fixed = s["modes"]["fixed"]["deployments"]["code"]["feasible_attainment"]
    assert shared >= fixed, s
    assert s["modes"]["fixed"]["total"]["peak_fleet_gpus"] <= BUDGET  # the split is of the same budget
