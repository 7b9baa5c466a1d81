"""Policies inside Dynamo's replay engine (real engine, small slices)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scaler.policy import Decision
from scaler.profile import PerformanceProfile, ProfileError, bundled_profile
from scaler.replay.engine import EngineConfig, run
from scaler.replay.runner import Setting, compare
from dynamo_scaling.traces import Request, read_trace, scale_rate, window

REQUIRED = ("planner", "trace", "requests", "sla_attainment", "feasible_attainment", "feasible_misses",
            "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "gpu_hours", "max_gpus", "scale_events",
            "wall_seconds")


class StepUp:
    """Two prefill workers at t=10 s, nothing else."""

    name = "step-up"

    def initial_tick_s(self) -> float:
        return 10.0

    def decide(self, obs) -> Decision:
        return Decision(3 if obs.now_s >= 10 else None, None, 10.0, "step")


def _steady(n: int = 300, rate: float = 5.0) -> list[Request]:
    return [Request(i * 1000.0 / rate, 2000, 20) for i in range(n)]


def test_targets_show_up_and_startup_is_honoured_and_billed():
    runs = {s: run(_steady(), StepUp(), EngineConfig(startup_s=s)) for s in (5.0, 30.0)}
    for startup, r in runs.items():
        ops = r.lifecycle
        scale = [o for o in ops if o["cause"] == "planner_scale" and o["pool"] == "prefill"]
        assert scale and scale[0]["at_ms"] == 10_000.0
        assert len(scale[0]["transitions"]) == 2  # 1 -> 3 prefill workers
        ready = [o for o in ops if o["cause"] == "worker_ready_event" and o["pool"] == "prefill"]
        assert ready and all(o["at_ms"] == pytest.approx(10_000.0 + startup * 1000) for o in ready)
    # starting workers are billed from the moment they are asked for: 1 worker for the whole run plus
    # 2 from t=10 s, whatever the start-up time (without billing, 30 s start-up would bill 40 s less)
    for r in runs.values():
        duration = r.summary["duration_ms"] / 1000
        assert r.summary["prefill_worker_seconds"] == pytest.approx(duration + 2 * (duration - 10), rel=0.01)


def test_warm_up_is_played_but_neither_scored_nor_billed():
    from scaler.replay.scoring import gpu_hours, score

    r = run(_steady(), StepUp(), EngineConfig(startup_s=5.0))  # 1 prefill + 1 decode, 3 + 1 from t=10 s
    end = r.summary["duration_ms"] / 1000
    assert gpu_hours(r, 1e-9) == pytest.approx(r.summary["gpu_hours"], rel=1e-6)  # same integral as the engine
    assert gpu_hours(r, 30.0) == pytest.approx(4 * (end - 30.0) / 3600, rel=1e-6)
    assert gpu_hours(r, 5.0) == pytest.approx((2 * 5.0 + 4 * (end - 10.0)) / 3600, rel=1e-6)
    whole, later = score(r, "steady"), score(r, "steady", from_s=30.0)
    assert whole["requests"] == 300 and later["requests"] == 300 - 150  # 5 req/s: 150 arrive before 30 s
    assert whole["max_gpus"] == later["max_gpus"] == 4
    assert whole["scale_events"] == 1 and later["scale_events"] == 0  # the step happened in the warm-up
    assert later["warmup_s"] == 30.0


def test_times_are_trace_times_when_the_trace_starts_late():
    from scaler.replay.scoring import gpu_hours

    late = [Request(50_000.0 + r.timestamp_ms, r.input_length, r.output_length) for r in _steady(100)]
    seen: list[float] = []

    class Watch(StepUp):
        def decide(self, obs):
            seen.append(obs.now_s)
            return Decision(3 if obs.now_s >= 60 else None, None, 10.0, "step")

    r = run(late, Watch(), EngineConfig(startup_s=5.0))  # the engine's own clock starts at the first request
    assert r.offset_s == 50.0 and seen[0] == pytest.approx(60.0)
    assert min(x["arrival_time_ms"] for x in r.per_request) == pytest.approx(50_000.0)
    step = [o for o in r.lifecycle if o["cause"] == "planner_scale"]
    assert step and step[0]["at_ms"] == pytest.approx(60_000.0)
    assert gpu_hours(r, 1e-9) == pytest.approx(r.summary["gpu_hours"], rel=1e-6)
    assert gpu_hours(r, 60.0) == pytest.approx(4 * (r.end_s - 60.0) / 3600, rel=1e-6)


def test_oracle_starts_a_spike_one_start_up_ahead_and_never_cancels_it():
    from scaler.policy import Observation, PoolObservation, TrafficWindow
    from scaler.replay.baselines import Oracle
    from scaler.replay.needs import WindowNeed

    needs = [WindowNeed(k * 30.0, 1.0, 8 if k == 10 else 2, 1) for k in range(20)]  # spike in [300, 330)
    oracle = Oracle(needs, startup_s=90.0)

    def target(t: float) -> int:
        return oracle.decide(Observation(t, TrafficWindow(), PoolObservation(), PoolObservation())).target_prefill

    # asked for 90 s + one window ahead, then held through the spike, even though the windows
    # right after "now" need less
    assert target(170.0) == 2 and target(180.0) == 8
    assert all(target(t) == 8 for t in range(180, 330, 5))
    assert target(330.0) == 2
    assert Oracle(needs, startup_s=90.0, headroom=1.5).decide(
        Observation(300.0, TrafficWindow(), PoolObservation(), PoolObservation())).target_prefill == 12


def test_references_sized_for_an_attainment():
    from scaler.replay.scoring import feasible_keys
    from scaler.replay.references import sized_for

    # 10 req/s with some long prompts, arriving ten at a time each second: the oracle's model sees
    # load per 5 s slice, so these clumps leave it misses to size for
    reqs = [Request((i // 10) * 1000.0, 6000 if i % 10 else 20000, 20) for i in range(600)]
    setting = Setting("burst", reqs, bundled_profile(), startup_s=5.0, warmup_s=10.0)
    rows, runs = compare(setting, ["oracle"])
    feasible = feasible_keys(runs["ceiling"])
    plain = rows[1]["feasible_attainment"]
    assert plain < 0.999  # the plain oracle misses some: there is something to size for
    ref = sized_for("oracle", setting, 0.999, feasible)
    assert ref.reached and ref.headroom > 1.0 and ref.row["feasible_attainment"] >= 0.999
    assert ref.row["gpu_hours"] > rows[1]["gpu_hours"]  # quality costs GPUs
    fixed = sized_for("fixed", setting, plain, feasible)
    assert fixed.reached and fixed.row["feasible_attainment"] >= plain
    never = sized_for("fixed", setting, 1.01, feasible, max_headroom=2.0)
    assert not never.reached and never.row["headroom"] == 2.0


@pytest.fixture(scope="module")
def slice_setting(traces_dir):
    reqs = scale_rate(window(read_trace(traces_dir / "mooncake_synthetic.jsonl"), 0, 240), 2.0, seed=3)
    return Setting("mooncake-slice", reqs, bundled_profile(), startup_s=30)


def test_ceiling_bounds_every_policy_and_results_are_deterministic(slice_setting):
    names = ["predictive", "static", "hpa", "dynamo-load", "dynamo-throughput", "oracle"]
    rows, _ = compare(slice_setting, names)
    by = {r["planner"]: r for r in rows}
    for r in rows:
        assert set(REQUIRED) <= set(r)
        assert by["ceiling"]["sla_attainment"] >= r["sla_attainment"] - 1e-9, r["planner"]
        assert r["feasible_attainment"] <= 1.0 and r["gpu_hours"] > 0
    again, _ = compare(slice_setting, ["predictive"])
    strip = lambda r: {k: v for k, v in r.items() if k not in ("wall_seconds", "gpu_hours_vs_oracle")}  # noqa: E731
    assert strip(again[1]) == strip(by["predictive"])


def test_profile_round_trip_and_errors(tmp_path):
    prof = bundled_profile()
    for suffix in (".json", ".npz"):
        back = PerformanceProfile.load(prof.save(tmp_path / f"p{suffix}"))
        assert np.allclose(back.prefill.thpt_per_gpu, prof.prefill.thpt_per_gpu)
        assert back.decode.max_kv_tokens == prof.decode.max_kv_tokens
    assert prof.prefill.ttft_ms_at(3000) == pytest.approx(72, rel=0.15)  # ~21 ms per 1k tokens + overhead
    bad = prof.to_dict()
    del bad["z_itl"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ProfileError, match="missing key 'z_itl'"):
        PerformanceProfile.load(tmp_path / "bad.json")


def test_replay_cli_writes_json_with_the_required_keys(tmp_path, traces_dir):
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace",
                          str(traces_dir / "azure_llm_2023_code.csv"), "--window", "0:300", "--rate-scale", "3",
                          "--planner", "predictive", "--startup-delay", "30", "--json", str(out),
                          "--plot", str(tmp_path / "r.png")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert set(REQUIRED) <= set(data) and data["planner"] == "predictive" and data["trace"] == "azure_llm_2023_code.csv"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert data["router_mode"] == "round_robin"
    # the Azure trace has no prefix hashes: no miss can be one met only from a cache
    misses = data["feasible_misses"]
    assert set(misses) == {"ttft", "ttft_cached", "itl"} and misses["ttft_cached"] == 0
    assert "misses TTFT/cached/ITL" in res.stdout
    kv = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace",
                         str(traces_dir / "azure_llm_2023_code.csv"), "--window", "0:120", "--planner", "static",
                         "--router", "kv_router", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert kv.returncode == 0, kv.stderr
    assert json.loads(out.read_text())["router_mode"] == "kv_router"
    nope = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace", str(out),
                           "--router", "random"], capture_output=True, text=True, timeout=60)
    assert nope.returncode == 2 and "--router" in nope.stderr and "random" in nope.stderr
    bad = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace", str(out),
                          "--planner", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--planner: unknown planner 'nope'" in bad.stderr
    late = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "replay", "--trace",
                           str(traces_dir / "azure_llm_2023_code.csv"), "--window", "0:300", "--warmup", "400"],
                          capture_output=True, text=True, timeout=60)
    assert late.returncode == 2 and "--warmup 400 s leaves no request to score" in late.stderr


def test_the_kv_router_hands_a_short_prompt_to_an_idle_worker():
    # four prefill workers; every 0.6 s a 40k-token prompt (0.83 s alone), then two short ones:
    # round robin puts some short prompts on a worker still busy with a long one, the KV router
    # on an idle one
    from scaler.replay.baselines import Static

    reqs = [r for k in range(60) for r in (Request(k * 600.0, 40000, 5), Request(k * 600.0 + 200, 500, 5),
                                            Request(k * 600.0 + 400, 500, 5))]
    idle = bundled_profile().prefill.ttft_ms_at(500)
    worst = {}
    for mode in ("round_robin", "kv_router"):
        r = run(reqs, Static(4, 1), EngineConfig(startup_s=0.0, initial_prefill=4, initial_decode=1, router_mode=mode))
        worst[mode] = max(q["ttft_ms"] for q in r.per_request if q["input_length"] == 500)
    assert worst["round_robin"] > 1.5 * idle
    assert worst["kv_router"] < 1.1 * idle
    with pytest.raises(ValueError, match="router_mode"):
        EngineConfig(router_mode="random")
