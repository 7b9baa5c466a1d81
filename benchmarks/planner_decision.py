"""Decision latency of the predictive planner per DGD (pure decision, no I/O), with a profile,
with the round-robin prefill model and without a profile (the online fit, refitted every
decision), beside the throughput baseline in the same run. Observations are recorded from a
replay of a real trace.

Prints numbers and writes benchmarks/results/planner_decision.json.
Usage: .venv/bin/python benchmarks/planner_decision.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.profile import bundled_profile
from scaler.replay import engine
from scaler.replay.baselines import DynamoThroughput
from dynamo_scaling.traces import read_trace, scale_rate

REPO = Path(__file__).resolve().parents[1]


class Recorder:
    """Replays with the planner while keeping every observation it saw."""

    name = "recorder"
    slo_probe_s = 0.1  # observations carry SLA counts, so the error-budget path is timed too

    def __init__(self) -> None:
        self.inner = PredictivePlanner(bundled_profile(), PlannerConfig())
        self.seen = []

    def initial_tick_s(self) -> float:
        return self.inner.initial_tick_s()

    def decide(self, obs):
        self.seen.append(obs)
        return self.inner.decide(obs)


def _time(policy, observations, repeat: int) -> np.ndarray:
    out = []
    for _ in range(repeat):
        for obs in observations:
            t0 = time.perf_counter()
            policy.decide(obs)
            out.append(time.perf_counter() - t0)
    return np.array(out) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    reqs = scale_rate(read_trace(REPO / "scaler" / "data" / "demo_trace_azure_code_20min.csv"), 5.0)
    rec = Recorder()
    engine.run(reqs, rec, engine.EngineConfig(startup_s=60), unloaded_ttft_ms=bundled_profile().prefill.ttft_ms_at)
    obs = rec.seen
    ours = _time(PredictivePlanner(bundled_profile(), PlannerConfig()), obs, args.repeat)
    rr = _time(PredictivePlanner(bundled_profile(), PlannerConfig(prefill_routing="round_robin")), obs, args.repeat)
    # a fresh planner per repeat: the fit's sample history grows as it would live
    online = np.concatenate([_time(PredictivePlanner(None, PlannerConfig()), obs, 1) for _ in range(args.repeat)])
    base = _time(DynamoThroughput(bundled_profile()), obs, args.repeat)
    result = {
        "decisions": len(ours),
        "predictive_ms": {"p50": float(np.percentile(ours, 50)), "p99": float(np.percentile(ours, 99)),
                          "max": float(ours.max())},
        "predictive_round_robin_ms": {"p50": float(np.percentile(rr, 50)), "p99": float(np.percentile(rr, 99)),
                                      "max": float(rr.max())},
        "predictive_online_fit_ms": {"p50": float(np.percentile(online, 50)), "p99": float(np.percentile(online, 99)),
                                     "max": float(online.max())},
        "dynamo_throughput_ms": {"p50": float(np.percentile(base, 50)), "p99": float(np.percentile(base, 99))},
        "p99_ratio_to_baseline": float(np.percentile(ours, 99) / max(np.percentile(base, 99), 1e-9)),
        "online_fit_p99_ratio_to_baseline": float(np.percentile(online, 99) / max(np.percentile(base, 99), 1e-9)),
        "target_ms": 50,
    }
    out = REPO / "benchmarks" / "results" / "planner_decision.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"| policy | p50 ms | p99 ms |\n|---|---|---|\n"
          f"| predictive | {result['predictive_ms']['p50']:.3f} | {result['predictive_ms']['p99']:.3f} |\n"
          f"| predictive, prefill_routing round_robin | {result['predictive_round_robin_ms']['p50']:.3f} | "
          f"{result['predictive_round_robin_ms']['p99']:.3f} |\n"
          f"| predictive, online fit | {result['predictive_online_fit_ms']['p50']:.3f} | "
          f"{result['predictive_online_fit_ms']['p99']:.3f} |\n"
          f"| dynamo-throughput | {result['dynamo_throughput_ms']['p50']:.3f} | {result['dynamo_throughput_ms']['p99']:.3f} |\n"
          f"{len(ours)} decisions; p99 ratio {result['p99_ratio_to_baseline']:.1f}x (online fit "
          f"{result['online_fit_p99_ratio_to_baseline']:.1f}x); target < 50 ms; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
