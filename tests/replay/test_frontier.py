"""The attainment / GPU-hours frontier: its points and curves from real replay runs, and the PNG."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scaler.profile import bundled_profile
from scaler.replay import frontier
from scaler.replay.scoring import feasible_keys
from scaler.replay.references import sized_for
from scaler.replay.runner import Setting, compare
from dynamo_scaling.traces import read_trace, scale_rate, window

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small(traces_dir):
    reqs = scale_rate(window(read_trace(traces_dir / "azure_llm_2023_code.csv"), 0.0, 240.0), 3.0, seed=1)
    setting = Setting("azure[0-240s] x3", reqs, bundled_profile(), startup_s=30.0)
    rows, runs = compare(setting, ["static", "dynamo-load"])
    return setting, rows, feasible_keys(runs["ceiling"])


def test_points_are_the_scored_policies_without_the_ceiling(small):
    _, rows, _ = small
    points = frontier.policy_points(rows)
    by = {r["planner"]: r for r in rows}
    assert [p.label for p in points] == ["static", "dynamo-load"]
    for p in points:
        assert (p.gpu_hours, p.attainment) == (by[p.label]["gpu_hours"], by[p.label]["feasible_attainment"])


def test_fixed_fleet_curve_passes_through_the_peak_sized_static_fleet(small):
    setting, rows, feasible = small
    runs = frontier.curve_runs("fixed", setting, feasible, (2.0, 0.5, 1.0))
    c = frontier.curve("fixed", runs + runs[:1])  # a factor seen twice (two searches) counts once
    assert [p.label for p in c.points] == ["x0.50", "x1.00", "x2.00"]
    assert [p.gpu_hours for p in c.points] == sorted(p.gpu_hours for p in c.points)
    assert c.points[0].gpu_hours < c.points[2].gpu_hours
    static = next(r for r in rows if r["planner"] == "static")  # the fleet the peak need asks for
    x1 = c.points[1]
    assert x1.gpu_hours == pytest.approx(static["gpu_hours"]) and x1.attainment == static["feasible_attainment"]


def test_sized_references_expose_every_run_of_their_search(small):
    setting, _, feasible = small
    ref = sized_for("oracle", setting, 0.9, feasible)
    factors = [r["headroom"] for r in ref.runs]
    assert len(factors) >= 2 and factors == sorted(factors)
    assert ref.row in ref.runs
    c = frontier.curve("oracle", ref.runs)
    assert len(c.points) == len(ref.runs) and c.label.startswith("oracle")


def test_plot_writes_a_png_with_one_panel_per_frontier(small, tmp_path):
    _, rows, _ = small
    runs = [{"headroom": 1.0, "gpu_hours": 0.3, "feasible_attainment": 0.8},
            {"headroom": 2.0, "gpu_hours": 0.6, "feasible_attainment": 0.99}]
    one = frontier.build("one", rows, {"oracle": runs, "fixed": runs})
    assert len(one.points) == 2 and [c.kind for c in one.curves] == ["oracle", "fixed"]
    out = frontier.plot([one, one, one, one], tmp_path / "f.png", "four cells")
    data = out.read_bytes()
    assert data[:8] == PNG and len(data) > 20_000
    with pytest.raises(ValueError, match="nothing to plot"):
        frontier.plot([], tmp_path / "none.png")


def test_replay_cli_plot_writes_the_frontier(tmp_path, traces_dir):
    out = tmp_path / "frontier.png"
    res = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace",
                          str(traces_dir / "azure_llm_2023_code.csv"), "--window", "0:120", "--rate-scale", "3",
                          "--planner", "static", "--startup-delay", "30", "--plot", str(out),
                          "--curve-factors", "0.5", "1", "--timeline", str(tmp_path / "t.png")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert f"frontier: {out}" in res.stderr
    assert out.read_bytes()[:8] == PNG and (tmp_path / "t.png").read_bytes()[:8] == PNG
    bad = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace",
                          str(traces_dir / "azure_llm_2023_code.csv"), "--curve-factors", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--curve-factors must be > 0" in bad.stderr


def test_compare_can_keep_only_the_runs_asked_for_and_scores_every_policy(small):
    """A long window at a high rate holds hundreds of MB per run: the benchmark keeps only the
    ceiling's (for feasibility), not every policy's per-request results until the next window."""
    setting, rows, _ = small
    lean_rows, kept = compare(setting, ["static", "dynamo-load"], keep=())
    assert set(kept) == {"ceiling"}  # feasibility is always read from it
    assert [r["planner"] for r in lean_rows] == [r["planner"] for r in rows] == ["ceiling", "static", "dynamo-load"]
    for lean, full in zip(lean_rows, rows):
        assert lean["feasible_attainment"] == full["feasible_attainment"]
        assert lean["gpu_hours"] == full["gpu_hours"]
