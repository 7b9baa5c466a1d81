"""`static-prior` (benchmarks/prior_fleet.py): the fixed fleet an operator sizes from the load seen
before the scored window, beside `static`, which is sized for the window's own peak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import prior_fleet  # noqa: F401  registers static-prior
from dynamo_scaling.traces import Request
from scaler.profile import bundled_profile
from scaler.replay import policies
from scaler.replay.needs import peak_need
from scaler.replay.runner import Setting, run_policy
from scaler.replay.scoring import feasible_keys, score

REPO = Path(__file__).resolve().parents[2]


def _step(low: float, high: float, at_s: float, end_s: float) -> list[Request]:
    """Evenly spaced 2,000-token prompts: `low` req/s up to `at_s`, `high` after."""
    out, t = [], 0.0
    while t < end_s:
        out.append(Request(t * 1000.0, 2000, 40))
        t += 1.0 / (low if t < at_s else high)
    return out


def test_it_is_sized_from_the_warm_up_alone():
    reqs = _step(2.0, 30.0, 300.0, 600.0)
    setting = Setting("step", reqs, bundled_profile(), startup_s=60.0, warmup_s=300.0)
    ctx = setting.context()
    before = [n for n in ctx.needs() if n.start_s + 30.0 <= 300.0]
    prior = policies.make("static-prior", ctx)
    static = policies.make("static", ctx)
    assert (prior.prefill, prior.decode) == peak_need(before)
    # the window's step is more than the warm-up ever needed: only hindsight sizes for it
    assert prior.prefill < static.prefill
    feasible = feasible_keys(run_policy(setting, "ceiling"))
    row = score(run_policy(setting, "static-prior"), "step", feasible, 300.0)
    assert row["planner"] == "static-prior" and row["max_gpus"] == prior.prefill + prior.decode
    assert row["feasible_attainment"] < score(run_policy(setting, "static"), "step", feasible, 300.0)["feasible_attainment"]


def test_a_load_that_falls_keeps_the_fleet_the_warm_up_needed():
    reqs = _step(30.0, 2.0, 300.0, 600.0)
    ctx = Setting("fall", reqs, bundled_profile(), warmup_s=300.0).context()
    prior, static = policies.make("static-prior", ctx), policies.make("static", ctx)
    assert prior.prefill == static.prefill  # both sized for the warm-up's 30 req/s


def test_without_a_warm_up_there_is_nothing_to_size_it_from():
    ctx = Setting("none", _step(2.0, 2.0, 0.0, 120.0), bundled_profile(), warmup_s=10.0).context()
    with pytest.raises(ValueError, match="static-prior is sized from the load before the scored window"):
        policies.make("static-prior", ctx)


def test_the_benchmark_refuses_it_without_a_warm_up():
    done = subprocess.run([sys.executable, "benchmarks/replay.py", "--warmup", "0", "--policies", "static-prior",
                           "--quick"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "static-prior needs --warmup of at least 30 s" in done.stderr
