"""The rule two planners are compared by on the synthetic shapes (benchmarks/pairwise.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.pairwise import compare, verdict


@pytest.mark.parametrize("subject, baseline, expected", [
    ((0.990, 0.90), (0.995, 1.00), "win"),    # both meet 0.99 (slack 0.005), 10 % cheaper
    ((0.990, 0.98), (0.995, 1.00), "tie"),    # 2 % cheaper: within the band
    ((0.999, 1.05), (0.995, 1.00), "loss"),   # both meet, 5 % dearer
    ((0.984, 0.50), (0.990, 1.00), "loss"),   # only the baseline meets, however cheap the subject
    ((0.985, 2.00), (0.970, 1.00), "win"),    # only the subject meets, however dear
    ((0.970, 0.90), (0.960, 1.00), "win"),    # neither meets: higher on less
    ((0.960, 0.90), (0.970, 1.00), "tie"),    # neither: lower but cheaper
    ((0.960, 1.10), (0.970, 1.00), "loss"),   # neither: lower and dearer
])
def test_verdict(subject, baseline, expected):
    assert verdict(subject, baseline, 0.99) == expected


def _run(target, rows):
    return {"startup_s": 60.0, "target": target,
            "rows": [{"shape": s, "policy": p, "feasible_attainment": a, "gpu_hours": g} for s, p, a, g in rows]}


def test_compare_tallies_and_prefers_only_on_twice_the_wins():
    runs = [_run(0.99, [("a", "new", 0.995, 0.8), ("a", "old", 0.995, 1.0),
                        ("b", "new", 0.995, 0.8), ("b", "old", 0.995, 1.0),
                        ("c", "new", 0.980, 0.8), ("c", "old", 0.995, 1.0)])]
    out = compare(runs, "new", "old")
    assert out["tally"] == {"win": 2, "loss": 1, "tie": 0} and out["subject_preferred"]
    runs[0]["rows"][0]["gpu_hours"] = 1.0  # a: now a tie
    out = compare(runs, "new", "old")
    assert out["tally"] == {"win": 1, "loss": 1, "tie": 1} and not out["subject_preferred"]


def test_cli_names_a_policy_that_was_not_played(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps(_run(0.99, [("a", "old", 0.99, 1.0)])))
    r = subprocess.run([sys.executable, "benchmarks/pairwise.py", str(f), "--subject", "new", "--baseline", "old",
                        "--name", "t"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "new or old not played" in r.stderr


def test_results_of_the_replay_benchmark_are_judged_cell_by_cell_too():
    """benchmarks/replay.py writes windows of frozen sets, every start-up in one file."""
    def row(trace, startup, planner, att, gpu_h):
        return {"planner": planner, "trace": trace, "startup_s": startup, "feasible_attainment": att,
                "gpu_hours": gpu_h}
    replay = {"attainment_target": 0.95, "sets": {"held-out": {"policies": [
        row("w1", 0.0, "new", 0.96, 0.9), row("w1", 0.0, "old", 0.96, 1.0),
        row("w1", 60.0, "new", 0.90, 1.0), row("w1", 60.0, "old", 0.96, 1.0),
        row("w1", 60.0, "static", 0.99, 0.5)]}}}
    out = compare([replay], "new", "old")
    assert [(c["shape"], c["startup_s"], c["verdict"]) for c in out["cells"]] == [
        ("held-out: w1", 0.0, "win"), ("held-out: w1", 60.0, "loss")]
    assert out["tally"] == {"win": 1, "loss": 1, "tie": 0} and not out["subject_preferred"]
