"""The README's first command: the embedded demo, judged by its output files and in a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.dynamo_planner import baseline

REPO = Path(__file__).resolve().parents[2]


def _demo(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "demo", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_report_shows_planner_beside_baseline_and_a_fixed_fleet_on_the_frontier(tmp_path):
    # as scripts/demo runs it: Dynamo's own planner code joins where its optional environment is installed
    res = _demo("--speed", "0", "--out", str(tmp_path), "--plugin", "benchmarks.dynamo_planner.baseline")
    assert res.returncode == 0, res.stderr
    assert f"report: {(tmp_path / 'report.md').resolve()}" in res.stdout
    rows = json.loads((tmp_path / "results.json").read_text())
    own = ["dynamo-own-throughput"] if baseline.available() else []
    assert [r["planner"] for r in rows] == ["predictive", "dynamo-throughput", *own, "fixed fleet, same attainment"]
    for r in rows:
        assert 0.0 <= r["sla_attainment"] <= 1.0 and r["gpu_hours"] > 0 and r["requests"] > 10_000
    by = {r["planner"]: r for r in rows}
    fixed, pred = by["fixed fleet, same attainment"], by["predictive"]
    # sized for the planner's own attainment, and the smallest fleet found reaches it
    assert fixed["sized_for"] == "predictive" and fixed["target_attainment"] == pred["feasible_attainment"]
    assert fixed["reached"] and fixed["feasible_attainment"] >= pred["feasible_attainment"]
    assert fixed["scale_events"] == 0 and fixed["capacity_factor"] > 0
    md = (tmp_path / "report.md").read_text()
    for name in ("predictive", "dynamo-throughput", *own, "fixed fleet, same attainment"):
        assert f"| {name} |" in md
    ratio = pred["gpu_hours"] / fixed["gpu_hours"]
    assert f"needs {fixed['gpu_hours']:.2f} GPU-hours: predictive uses {ratio:.2f}x of that" in md
    assert "![frontier](frontier.png)" in md and "![timeline](timeline.png)" in md
    for png in ("timeline.png", "frontier.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--planner", "nope"], "--planner: unknown planner 'nope'"),
        (["--rate-scale", "0"], "--rate-scale must be > 0"),
        (["--trace", "/no/such/trace.csv"], "no such trace file"),
        (["--attainment-target", "1.5"], "--attainment-target must be in (0, 1)"),
        (["--attainment-target", "0"], "--attainment-target must be in (0, 1)"),
    ],
)
def test_bad_input_names_the_flag(tmp_path, args, message):
    res = _demo(*args, "--speed", "0", "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and message in res.stderr
    assert not (tmp_path / "r").exists()


def test_live_view_in_a_terminal(tmp_path):
    session = f"demo-{tmp_path.name[-8:]}"
    cmd = (f"{sys.executable} -m dynamo_scaling.cli demo --speed 400 --no-frontier --out {tmp_path}; "
           "echo DEMO-EXIT=$?; sleep 120")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", "-c", str(REPO), cmd],
                   check=True)
    try:
        seen_live, screen = False, ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            seen_live |= "simulated time" in screen and "prefill" in screen and "TTFT ms" in screen
            if "DEMO-EXIT=" in screen:
                break
            time.sleep(0.5)
        assert seen_live, screen
        assert "DEMO-EXIT=0" in screen, screen
        assert (tmp_path / "report.md").exists() and not (tmp_path / "frontier.png").exists()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_the_planner_aims_for_the_attainment_target_asked(tmp_path):
    trace = REPO / "traces" / "mooncake_synthetic.jsonl"
    gpu_hours = {}
    for target in ("0.5", "0.99"):
        out = tmp_path / target
        res = _demo("--trace", str(trace), "--rate-scale", "2", "--attainment-target", target, "--speed", "0",
                    "--no-frontier", "--out", str(out))
        assert res.returncode == 0, res.stderr
        assert f"the planner aims for {float(target):g} of requests meeting both" in (out / "report.md").read_text()
        gpu_hours[target] = next(r["gpu_hours"] for r in json.loads((out / "results.json").read_text())
                                 if r["planner"] == "predictive")
    assert gpu_hours["0.5"] < gpu_hours["0.99"]
