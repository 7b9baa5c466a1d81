"""Dynamo 1.6.1's own planner code (benchmarks/dynamo_planner) in the replay engine, on a short slice."""

from __future__ import annotations

import pytest

from benchmarks.dynamo_planner import baseline
from scaler.profile import bundled_profile
from scaler.replay import policies
from scaler.replay.engine import EngineConfig
from scaler.replay.scoring import score
from scaler.replay.runner import Setting, compare
from dynamo_scaling.traces import Request, write_mooncake

pytestmark = pytest.mark.skipif(not baseline.available(), reason=baseline.unavailable_reason()
                                if not baseline.available() else "")


def _burst_then_quiet() -> list[Request]:
    # 60 s at 20 req/s of 4000-token prompts (80k prompt tokens/s, about 1.7 prefill workers of
    # the bundled profile), then 120 s at 0.5 req/s: one worker per pool is too few, then plenty
    busy = [Request(i * 50.0, 4000, 100) for i in range(1200)]
    quiet = [Request(60_000.0 + i * 2000.0, 1000, 50) for i in range(60)]
    return busy + quiet


@pytest.mark.parametrize("target", baseline.MODES)
def test_real_planner_scales_up_under_load_and_back_down(target):
    reqs = _burst_then_quiet()
    planner = baseline.DynamoOwnPlanner(target, bundled_profile())
    run = planner.run_replay(reqs, EngineConfig(startup_s=10.0, initial_prefill=1, initial_decode=1))
    assert len(run.per_request) == len(reqs)
    scale = [op for op in run.lifecycle if op["cause"] == "planner_scale"]
    starts = [op for op in scale if op["pool"] == "prefill"
              and any(t["transition"] == "worker_starting" for t in op["transitions"])]
    assert starts, f"{target}: Dynamo's planner never started a prefill worker: {scale}"
    peak = max(p.prefill[0] + p.prefill[1] for p in run.timeline)
    assert peak >= 2
    # once the queue is worked off it gives workers back (drains), as its +-1 rules say
    drains = [op for op in scale if any(t["transition"] == "worker_draining" for t in op["transitions"])
              and op["at_ms"] > starts[0]["at_ms"]]
    assert drains, f"{target}: no scale-down after the burst: {scale}"
    assert run.extra["dynamo_planner"]["ticks"] > 0 and run.timeline[-1].t_s > 60.0
    row = score(run, "burst")
    assert row["planner"] == f"dynamo-own-{target}" and row["scale_events"] >= 2 and row["gpu_hours"] > 0


def test_registered_and_scored_beside_the_other_policies():
    assert {"dynamo-own-load", "dynamo-own-throughput"} <= set(policies.names())
    setting = Setting("burst", _burst_then_quiet()[:600], bundled_profile(), startup_s=10.0)
    rows, runs = compare(setting, ["dynamo-load", "dynamo-own-load"])
    by = {r["planner"]: r for r in rows}
    assert set(by) == {"ceiling", "dynamo-load", "dynamo-own-load"}
    assert by["dynamo-own-load"]["requests"] == 600 and 0.0 <= by["dynamo-own-load"]["feasible_attainment"] <= 1.0
    # it starts from the fleet every policy starts from (the first minute's need), not Dynamo's 1 + 1
    own, ours = runs["dynamo-own-load"].config, runs["dynamo-load"].config
    assert (own.initial_prefill, own.initial_decode) == (ours.initial_prefill, ours.initial_decode) != (1, 1)


def test_the_sla_target_fails_loudly_without_aisimulate(tmp_path):
    # the stand-ins must not let Dynamo's SLA mode run quietly without its performance model
    planner = baseline.DynamoOwnPlanner("load", bundled_profile())
    cfg = planner.planner_config(str(tmp_path)) | {"optimization_target": "sla"}
    trace = write_mooncake([Request(i * 100.0, 1000, 20) for i in range(20)], tmp_path / "t.jsonl")
    run_trace_replay = baseline._import_replay()
    with pytest.raises(ModuleNotFoundError, match="AISimulate is not installed"):
        run_trace_replay(str(trace), prefill_engine_args=planner.engine_args(EngineConfig(), "prefill"),
                         decode_engine_args=planner.engine_args(EngineConfig(), "decode"), planner_config=cfg)


def test_timeline_takes_requests_that_arrive_together_and_some_without_a_first_token():
    # two requests in the same millisecond, one never served (no TTFT): ordering must not compare
    # the missing latency with a number
    per_request = [{"arrival_time_ms": 1000.0, "ttft_ms": 120.0, "itl_ms": 20.0, "input_length": 400},
                   {"arrival_time_ms": 1000.0, "ttft_ms": None, "itl_ms": None, "input_length": 800},
                   {"arrival_time_ms": 7000.0, "ttft_ms": 90.0, "itl_ms": 10.0, "input_length": 200}]
    ticks = [{"at_ms": 5000.0, "topology": {}, "runtime_decision": {"target_prefill": 2}},
             {"at_ms": 10000.0, "topology": {}}]
    points = baseline._timeline(ticks, per_request, 0.0)
    assert [p.t_s for p in points] == [5.0, 10.0]
    assert points[0].request_rate == pytest.approx(2 / 5.0) and points[1].request_rate == pytest.approx(1 / 5.0)
    assert points[0].avg_ttft_ms == pytest.approx(120.0) and points[0].avg_isl == pytest.approx(600.0)
