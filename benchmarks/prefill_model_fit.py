"""How well each prefill model of scaler/planner/tail.py predicts the replay engine: fixed fleets
of c prefill workers (decode generous, so only prefill decides TTFT) played on the windows of
benchmarks/replay.py, round robin, against the models fed the window as the oracle is (30 s
windows, 5 s slices, each window's own prompt lengths). The share compared is that of the scored
prompts an idle worker prefills in time whose TTFT meets the target.

The round-robin model's clumping (arrival_ca2 2) was chosen on the DEV rows; the held-out rows
report it. Prints a table and writes benchmarks/results/prefill_model_fit.json.
Usage: .venv/bin/python benchmarks/prefill_model_fit.py [--set dev|held-out|both] [--ttft-ms 500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import criteria
from benchmarks.replay import SETS, TRACES
from scaler.planner import tail
from scaler.planner.config import PlannerConfig
from scaler.profile import PerformanceProfile, bundled_profile
from scaler.replay import baselines, engine
from dynamo_scaling.traces import Request, read_trace, scale_rate, window

REPO = Path(__file__).resolve().parents[1]
WARMUP_S = 300.0
WINDOW_S = 30.0
SLICE_S = 5.0
DECODE = 8
# (name, routing, arrival_ca2): the pooled model as the oracle (ca2 1) and the planner use it, and
# the round-robin model at the planner's default
_PLANNER_CA2 = {m: PlannerConfig().effective_arrival_ca2(m) for m in ("pooled", "round_robin")}
MODELS = (("pooled, ca2 1", "pooled", 1.0),
          (f"pooled, ca2 {_PLANNER_CA2['pooled']:g}", "pooled", _PLANNER_CA2["pooled"]),
          (f"round robin, ca2 {_PLANNER_CA2['round_robin']:g}", "round_robin", _PLANNER_CA2["round_robin"]))
# prefill workers tried per trace (enough to span attainment 0.6-0.99 at the scale of replay.py)
FLEETS = {"mooncake": (5, 8, 10, 12, 14), "azure": (4, 6, 8, 10, 12)}


def engine_share(reqs: list[Request], workers: int, profile: PerformanceProfile, ttft_ms: float,
                  from_ms: float) -> float:
    cfg = engine.EngineConfig(startup_s=0.0, ttft_ms=ttft_ms, initial_prefill=workers, initial_decode=DECODE)
    run = engine.run(reqs, baselines.Static(workers, DECODE), cfg)
    scored = [r for r in run.per_request if float(r["arrival_time_ms"]) >= from_ms
              and profile.prefill.ttft_ms_at(int(r["input_length"])) <= ttft_ms]
    met = sum(1 for r in scored if r.get("ttft_ms") is not None and r["ttft_ms"] <= ttft_ms)
    return met / max(1, len(scored))


def model_share(reqs: list[Request], workers: int, profile: PerformanceProfile, ttft_ms: float, from_s: float,
                 routing: str, ca2: float) -> float:
    ts = np.array([r.timestamp_ms / 1000.0 for r in reqs])
    isl = np.array([r.input_length for r in reqs], float)
    num = den = 0.0
    for k in range(int(from_s // WINDOW_S), int(ts.max() // WINDOW_S) + 1):
        a, b = k * WINDOW_S, (k + 1) * WINDOW_S
        m = (ts >= max(a, from_s)) & (ts < b)
        n = int(m.sum())
        if n == 0:
            continue
        mix = tail.PromptMix.from_lengths(isl[m])
        bursts = tail.burst_factors(ts[m], SLICE_S, (a, b))
        att = tail.prefill_attainment(n / WINDOW_S, mix, workers, profile, ttft_ms, ca2, bursts, routing)
        reach = float(np.mean([profile.prefill.ttft_ms_at(x) <= ttft_ms for x in isl[m]]))
        num += att * n * reach
        den += n * reach
    return num / max(den, 1e-9)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--set", choices=("dev", "held-out", "both"), default="both")
    p.add_argument("--ttft-ms", type=float, default=500.0)
    args = p.parse_args()
    profile = bundled_profile()
    sets = ("dev", "held-out") if args.set == "both" else (args.set,)
    rows = []
    for set_name in sets:
        for fname, a, b, rate in SETS[set_name]:
            start = max(0.0, a - WARMUP_S)
            reqs = scale_rate(window(read_trace(TRACES / fname), start, b), rate, seed=1)
            label = criteria.label((fname, a, b, rate))
            from_s = a - start
            for workers in FLEETS["mooncake" if "mooncake" in fname else "azure"]:
                t0 = time.time()
                row = {"set": set_name, "trace": label, "prefill": workers,
                       "engine": engine_share(reqs, workers, profile, args.ttft_ms, from_s * 1000.0)}
                for name, routing, ca2 in MODELS:
                    row[name] = model_share(reqs, workers, profile, args.ttft_ms, from_s, routing, ca2)
                rows.append(row)
                print(f"[{set_name}] {label}, {workers} prefill: engine {row['engine']:.3f}, "
                      + ", ".join(f"{n} {row[n]:.3f}" for n, _, _ in MODELS) + f" ({time.time() - t0:.0f} s)", flush=True)
    names = [n for n, _, _ in MODELS]
    lines = ["| set | window | prefill | engine | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['set']} | {r['trace']} | {r['prefill']} | {r['engine']:.3f} | "
                     + " | ".join(f"{r[n]:.3f} ({r[n] - r['engine']:+.3f})" for n in names) + " |")
    summary = {}
    for set_name in sets:
        sub = [r for r in rows if r["set"] == set_name]
        summary[set_name] = {n: {"mean_abs_error": float(np.mean([abs(r[n] - r["engine"]) for r in sub])),
                                 "max_abs_error": float(np.max([abs(r[n] - r["engine"]) for r in sub]))}
                             for n in names}
        lines.append("")
        lines.append(f"{set_name}: mean |model - engine| " + ", ".join(
            f"{n} {summary[set_name][n]['mean_abs_error']:.3f} (max {summary[set_name][n]['max_abs_error']:.3f})"
            for n in names))
    print("\n".join(lines))
    out = REPO / "benchmarks" / "results" / "prefill_model_fit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "summary": summary, "ttft_ms": args.ttft_ms}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
