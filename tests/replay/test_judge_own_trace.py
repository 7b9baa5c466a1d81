"""The judged comparison of benchmarks/replay.py on a trace of one's own (`--trace`), and the
attainment target `dynamo-scaling replay` plans for (`--attainment-target`)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _azure_trace(path: Path, seconds: int = 360, quiet: tuple[int, int] = (0, 0)) -> Path:
    """One request a second, six a second from the middle on, none within `quiet`: 3,000-token
    prompts, 20-token answers."""
    start = dt.datetime(2024, 5, 1, 12, 0, 0)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for s in range(seconds):
        per = 0 if quiet[0] <= s < quiet[1] else 1 if s < seconds // 2 else 6
        for k in range(per):
            t = start + dt.timedelta(seconds=s + k / per)
            rows.append(f"{t:%Y-%m-%d %H:%M:%S.%f},3000,20")
    path.write_text("\n".join(rows) + "\n")
    return path


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/replay.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_the_benchmark_judges_a_trace_of_ones_own(tmp_path):
    trace = _azure_trace(tmp_path / "mine.csv")
    out = tmp_path / "results"
    done = _bench("--trace", str(trace), "--window", "120:360", "--warmup", "120", "--startup", "0",
                  "--target", "0.95", "--policies", "predictive", "static", "--name", "mine", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "mine.json").read_text())
    assert list(record["sets"]) == ["trace"] and record["attainment_target"] == 0.95
    assert record["sets"]["trace"]["windows"] == [[str(trace.resolve()), 120.0, 360.0, 1.0]]
    (cell,) = record["sets"]["trace"]["references"]
    assert cell["trace"] == "mine.csv[120-360s] x1" and cell["startup_s"] == 0.0
    for ref in ("oracle_same", "fixed_same", "oracle_high", "fixed_high"):
        assert 0 < cell[ref]["gpu_hours"] and 0 <= cell[ref]["feasible_attainment"] <= 1
    assert {r["planner"] for r in record["sets"]["trace"]["policies"]} >= {"predictive", "static", "ceiling"}
    report = (out / "mine.md").read_text()
    assert "Acceptance criteria, cell by cell" in report and "| trace | mine.csv[120-360s] x1 | 0 |" in report
    assert (out / "mine-frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_without_a_window_the_trace_after_the_warm_up_is_scored(tmp_path):
    trace = _azure_trace(tmp_path / "mine.csv", seconds=240)
    out = tmp_path / "results"
    done = _bench("--trace", str(trace), "--warmup", "60", "--startup", "0", "--no-references",
                  "--policies", "static", "--name", "whole", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    (window,) = json.loads((out / "whole.json").read_text())["sets"]["trace"]["windows"]
    assert window[1] == 60.0 and window[2] == pytest.approx(240.0, abs=1.0)


def test_the_sla_targets_are_the_ones_asked(tmp_path):
    trace = _azure_trace(tmp_path / "mine.csv")
    hours = {}
    for ttft in ("500", "100"):
        out = tmp_path / ttft
        done = _bench("--trace", str(trace), "--window", "120:360", "--warmup", "120", "--startup", "0",
                      "--ttft-ms", ttft, "--itl-ms", "40", "--no-references", "--policies", "predictive",
                      "--name", "sla", "--out", str(out))
        assert done.returncode == 0, done.stderr[-3000:]
        record = json.loads((out / "sla.json").read_text())
        assert record["ttft_ms"] == float(ttft) and record["itl_ms"] == 40.0
        hours[ttft] = next(r["gpu_hours"] for r in record["sets"]["trace"]["policies"] if r["planner"] == "predictive")
    # 3,000-token prompts take about 70 ms on an idle worker: a 100 ms target leaves little room to queue
    assert hours["100"] > hours["500"]


@pytest.mark.parametrize("args, reason", [
    (["--trace", "{missing}"], "--trace: "),
    (["--trace", "{trace}", "--set", "dev"], "--set and --trace: give one"),
    (["--window", "0:100"], "--window and --rate-scale apply to --trace only"),
    (["--trace", "{trace}", "--window", "60:10"], "--window needs 0 <= START < END"),
    (["--trace", "{trace}", "--window", "a:b"], "--window must be START:END"),
    (["--trace", "{trace}", "--window", "500:600"], "--window starts at 500 s, after the trace's last request"),
    (["--trace", "{trace}", "--rate-scale", "0"], "--rate-scale must be > 0"),
    (["--trace", "{trace}", "--warmup", "400"], "--warmup 400 s leaves nothing of the trace"),
    (["--trace", "{bad}"], "--trace: "),
    (["--trace", "{gap}", "--window", "150:350"], "--window 150:350: the trace has no request in it"),
    (["--trace", "{trace}", "--ttft-ms", "0"], "--ttft-ms must be > 0"),
    (["--trace", "{trace}", "--itl-ms", "-5"], "--itl-ms must be > 0"),
])
def test_bad_input_names_the_flag_and_writes_nothing(tmp_path, args, reason):
    trace = _azure_trace(tmp_path / "mine.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a time,1,1\n")
    gap = _azure_trace(tmp_path / "gap.csv", seconds=520, quiet=(120, 400))
    subs = {"{trace}": str(trace), "{missing}": str(tmp_path / "nope.csv"), "{bad}": str(bad), "{gap}": str(gap)}
    out = tmp_path / "results"
    done = _bench(*[subs.get(a, a) for a in args], "--quick", "--name", "x", "--out", str(out))
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    assert reason in done.stderr
    assert not out.exists()


def _replay(trace: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace", str(trace),
                           "--planner", "predictive", "--json", str(out), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_replay_plans_for_the_attainment_target_asked(tmp_path):
    trace = REPO / "traces" / "azure_llm_2023_code.csv"
    rows = {}
    for target in ("0.5", "0.99"):
        done = _replay(trace, tmp_path / f"{target}.json", "--window", "0:300", "--rate-scale", "3",
                       "--startup-delay", "30", "--attainment-target", target)
        assert done.returncode == 0, done.stderr[-3000:]
        rows[target] = json.loads((tmp_path / f"{target}.json").read_text())
        assert rows[target]["attainment_target"] == float(target)
    # the same load, half the requests allowed to miss: fewer GPUs
    assert rows["0.5"]["gpu_hours"] < rows["0.99"]["gpu_hours"]


@pytest.mark.parametrize("target", ["1", "0", "1.5", "-0.1"])
def test_replay_refuses_a_target_outside_0_1(tmp_path, target):
    done = _replay(REPO / "traces" / "azure_llm_2023_code.csv", tmp_path / "r.json", "--attainment-target", target)
    assert done.returncode == 2 and "--attainment-target must be in (0, 1)" in done.stderr
    assert not (tmp_path / "r.json").exists()
