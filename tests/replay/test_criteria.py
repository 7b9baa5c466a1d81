"""The acceptance criteria judged from a benchmark results file (benchmarks/criteria.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import criteria

REPO = Path(__file__).resolve().parents[2]


def _entry(att=0.99, gph=2.0, vs_oracle=1.10, vs_fixed=0.90, dominated=(), oracle_high=(True, 1.5),
           fixed_high=(True, 1.2)) -> dict:
    return {"trace": "t[0-600s] x1", "startup_s": 60.0, "predictive_attainment": att, "predictive_gpu_hours": gph,
            "dominated_by": list(dominated), "predictive_vs_oracle_same": vs_oracle,
            "predictive_vs_fixed_same": vs_fixed, "oracle_same": {"reached": True},
            "oracle_high": {"reached": oracle_high[0], "headroom": oracle_high[1]},
            "fixed_high": {"reached": fixed_high[0], "headroom": fixed_high[1]}}


def test_each_bound_is_met_at_its_edge_and_missed_past_it():
    v = criteria.judge_cell(_entry(vs_oracle=1.15, vs_fixed=0.85), need_peak_to_mean=2.0)
    assert (v.below_oracle_bound, v.below_fixed, v.fixed_bound_met) == (True, True, True)
    v = criteria.judge_cell(_entry(vs_oracle=1.16, vs_fixed=0.86), need_peak_to_mean=2.0)
    assert (v.below_oracle_bound, v.below_fixed, v.fixed_bound_met) == (False, True, False)
    assert criteria.judge_cell(_entry(vs_fixed=1.0), 2.0).below_fixed is False


def test_the_085_bound_applies_only_to_bursty_windows():
    steady = criteria.judge_cell(_entry(vs_fixed=0.95), need_peak_to_mean=1.14)
    bursty = criteria.judge_cell(_entry(vs_fixed=0.95), need_peak_to_mean=1.5)
    assert (steady.bursty, steady.fixed_bound_met) == (False, None)
    assert (bursty.bursty, bursty.fixed_bound_met) == (True, False)


def test_a_reference_that_was_not_reached_leaves_its_criterion_unjudged():
    v = criteria.judge_cell(_entry(vs_oracle=None, vs_fixed=None), 3.0)
    assert (v.below_oracle_bound, v.below_fixed, v.fixed_bound_met) == (None, None, None)


def test_the_target_is_judged_only_where_a_reference_reaches_it_within_twice_its_capacity():
    far = dict(oracle_high=(True, 2.5), fixed_high=(False, 6.0))
    assert criteria.judge_cell(_entry(att=0.90, **far), 1.1).target_met is None
    assert criteria.judge_cell(_entry(att=0.985), 1.1).target_met is True   # within the 0.005 slack
    assert criteria.judge_cell(_entry(att=0.984), 1.1).target_met is False
    only_fixed = dict(oracle_high=(False, 6.0), fixed_high=(True, 2.0))
    assert criteria.judge_cell(_entry(att=0.95, **only_fixed), 1.1, target=0.95).target_met is True


def test_dominating_policies_are_named():
    v = criteria.judge_cell(_entry(dominated=("static",)), 2.0)
    assert v.dominated_by == ("static",)
    assert "static" in criteria.table([v])[-1]


def test_peak_to_mean_of_a_need_series():
    assert criteria.peak_to_mean([2, 2, 2, 2]) == 1.0
    assert criteria.peak_to_mean([1, 1, 1, 5]) == 2.5
    assert criteria.peak_to_mean([]) == 1.0 and criteria.peak_to_mean([0, 0]) == 1.0


def test_bundled_windows_azure_is_bursty_and_mooncake_is_not():
    # the traces in traces/, as the benchmark plays them
    assert criteria.burstiness(("azure_llm_2023_code.csv", 2400.0, 3436.0, 4.0)) >= criteria.BURSTY_PEAK_TO_MEAN
    assert criteria.burstiness(("mooncake_synthetic.jsonl", 300.0, 600.0, 2.0)) < criteria.BURSTY_PEAK_TO_MEAN


def _results(entries: list[dict]) -> dict:
    return {"subject": "predictive", "attainment_target": 0.99,
            "sets": {"held-out": {"windows": [["w.csv", 0.0, 600.0, 1.0]], "references": entries}}}


def test_judge_counts_each_criterion_per_set():
    good = _entry() | {"trace": "w.csv[0-600s] x1"}
    bad = _entry(vs_oracle=1.3, vs_fixed=1.01, dominated=("static",), att=0.97) | {"trace": "w.csv[0-600s] x1",
                                                                                    "startup_s": 120.0}
    verdicts = criteria.judge(_results([good, bad]), {"w.csv[0-600s] x1": 2.0})
    assert [v.startup_s for v in verdicts] == [60.0, 120.0]
    (line,) = criteria.summary(verdicts)
    assert line.startswith("held-out: 1. 1 of 2; 2. below fixed 1 of 2; 2. <= 0.85x on bursty 0 of 2; "
                           "3. not dominated 1 of 2; 4. 1 of 2")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/criteria.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_cli_writes_the_verdicts_beside_the_results(tmp_path):
    results = _results([_entry() | {"trace": "azure_llm_2023_code.csv[2400-3436s] x4"}])
    results["sets"]["held-out"]["windows"] = [["azure_llm_2023_code.csv", 2400.0, 3436.0, 4.0]]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(results))
    done = _cli(str(path))
    assert done.returncode == 0, done.stderr
    assert "| held-out | azure_llm_2023_code.csv[2400-3436s] x4 | 60 | yes" in done.stdout
    (saved,) = json.loads((tmp_path / "run-criteria.json").read_text())
    assert saved["bursty"] is True and saved["below_oracle_bound"] is True


@pytest.mark.parametrize("content, reason", [(None, "cannot be read"), ("{]", "not a results file"),
                                             ('{"x": 1}', "not a results file")])
def test_cli_refuses_what_is_not_a_results_file(tmp_path, content, reason):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    done = _cli(str(path))
    assert done.returncode == 2
    assert str(path) in done.stderr and reason in done.stderr
    assert not (tmp_path / "r-criteria.json").exists()


def test_gpu_hours_must_rise_with_the_target_in_each_cell_played_at_both():
    low = criteria.judge_cell(_entry(att=0.95, gph=2.0), 2.0, target=0.95)
    high = criteria.judge_cell(_entry(att=0.99, gph=2.4), 2.0, target=0.99)
    flat = criteria.judge_cell(_entry(att=0.99, gph=2.0) | {"startup_s": 0.0}, 2.0, target=0.99)
    flat_low = criteria.judge_cell(_entry(att=0.95, gph=2.0) | {"startup_s": 0.0}, 2.0, target=0.95)
    alone = criteria.judge_cell(_entry() | {"startup_s": 120.0}, 2.0)
    rows = {r["startup_s"]: r for r in criteria.growth([high, low, flat, flat_low, alone])}
    assert set(rows) == {60.0, 0.0}  # a cell played at one target only is not compared
    assert rows[60.0]["targets"] == [0.95, 0.99] and rows[60.0]["gpu_hours"] == [2.0, 2.4]
    assert rows[60.0]["grows"] is True and rows[0.0]["grows"] is False
    assert "MISSED" in criteria.growth_table([rows[0.0]])[-1]


def test_cli_compares_runs_at_two_targets(tmp_path):
    paths = []
    for target, gph in ((0.95, 2.0), (0.99, 2.5)):
        results = _results([_entry(gph=gph) | {"trace": "w.csv[0-600s] x1"}]) | {"attainment_target": target}
        results["sets"]["held-out"]["windows"] = [["azure_llm_2023_code.csv", 2400.0, 3436.0, 4.0]]
        results["sets"]["held-out"]["references"][0]["trace"] = "azure_llm_2023_code.csv[2400-3436s] x4"
        paths.append(tmp_path / f"t{target}.json")
        paths[-1].write_text(json.dumps(results))
    done = _cli(*map(str, paths))
    assert done.returncode == 0, done.stderr
    assert "| 0.95 / 0.99 |" in done.stdout and "grow with the target: 1 of 1 cells" in done.stdout


@pytest.mark.parametrize("target", ["1.5", "0", "-0.2"])
def test_replay_benchmark_refuses_a_target_outside_0_1(target):
    done = subprocess.run([sys.executable, "benchmarks/replay.py", "--target", target, "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--target must be in (0, 1)" in done.stderr


def test_a_shortfall_is_measured_in_standard_errors_of_the_requests_scored():
    # 2,900 requests at a 0.95 target: one standard error is sqrt(0.95 * 0.05 / 2900) = 0.00405
    v = criteria.judge_cell(_entry(att=0.942) | {"predictive_requests": 2900}, 1.1, target=0.95)
    assert v.target_met is False and v.requests == 2900
    assert v.shortfall_se == pytest.approx(0.008 / 0.00405, rel=0.01)
    assert "0.008 short, 2.0 SE over 2,900 requests" in criteria.table([v])[-1]
    above = criteria.judge_cell(_entry(att=0.96) | {"predictive_requests": 2900}, 1.1, target=0.95)
    assert above.shortfall_se < 0 and "short" not in criteria.table([above])[-1]
    unknown = criteria.judge_cell(_entry(att=0.942), 1.1, target=0.95)
    assert unknown.requests is None and unknown.shortfall_se is None


def test_judge_takes_the_requests_scored_from_the_subjects_own_row():
    entry = _entry(att=0.942) | {"trace": "w.csv[0-600s] x1"}
    results = _results([entry]) | {"attainment_target": 0.95}
    results["sets"]["held-out"]["policies"] = [
        {"planner": "static", "trace": "w.csv[0-600s] x1", "startup_s": 60.0, "feasible_requests": 10},
        {"planner": "predictive", "trace": "w.csv[0-600s] x1", "startup_s": 0.0, "feasible_requests": 20},
        {"planner": "predictive", "trace": "w.csv[0-600s] x1", "startup_s": 60.0, "feasible_requests": 2900}]
    (v,) = criteria.judge(results, {"w.csv[0-600s] x1": 1.1})
    assert v.requests == 2900


def test_a_subject_is_never_listed_as_dominating_itself():
    from benchmarks import replay
    subject = {"planner": "tuned", "feasible_attainment": 0.98, "gpu_hours": 3.2}
    rows = [subject, {"planner": "static", "feasible_attainment": 0.99, "gpu_hours": 3.0},
            {"planner": "predictive", "feasible_attainment": 0.99, "gpu_hours": 3.0},
            {"planner": "hpa", "feasible_attainment": 0.97, "gpu_hours": 1.0}]
    assert replay._dominators(subject, rows) == ["static"]


def test_burstiness_sizes_the_needs_with_the_profile_the_run_was_given(tmp_path):
    # workers 20x as fast: a pool's need is a worker or none, so the peak over the mean is far lower
    from benchmarks.profile_mismatch import scaled
    from scaler.profile import bundled_profile

    fast = scaled(bundled_profile(), 20.0).save(tmp_path / "fast.json")
    window = ("azure_llm_2023_code.csv", 2400.0, 3436.0, 4.0)
    by_bundled, by_fast = criteria.burstiness(window), criteria.burstiness(window, profile=str(fast))
    assert by_fast < 0.7 * by_bundled
    entry = _entry() | {"trace": criteria.label(window)}
    for profile, expected in ((str(fast), by_fast), ("bundled", by_bundled)):
        results = _results([entry]) | {"profile": profile}
        results["sets"]["held-out"]["windows"] = [list(window)]
        (verdict,) = criteria.judge(results)
        assert verdict.need_peak_to_mean == pytest.approx(expected), profile
