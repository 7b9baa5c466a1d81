"""A planner started without a profile against the profiled one, in Dynamo's replay engine.

On each window of benchmarks/replay.py (DEV by default; HELD_OUT only for the final report, never
to tune), with a 60 s start-up: the default `predictive` planner sized from the bundled mocker
profile (the baseline, run in the same process on the same requests) and `predictive-online`, the
same planner given no profile, which fits one online (scaler/planner/online_fit.py) and sizes from
the load path alone until the fit is trusted. Both start at the same instant with the same fleet.

Two scorings per window:
- "cold": the planner starts at the window's start and the whole window is scored, the untrusted
  phase included (what starting without a profile costs);
- "warm": the planner starts `--warmup` s earlier (played, not scored or billed), as in
  benchmarks/replay.py (where it stands once it has learnt).

Reported: feasible attainment and GPU-hours of both, the ratios online / profiled, and the trace
seconds from the planner's start until the fit was trusted. Prints a table and writes
benchmarks/results/online_fit.json.
Usage: .venv/bin/python benchmarks/online_fit.py [--set dev|held-out|both] [--startup 60] [--warmup 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.replay import DEV, HELD_OUT, TRACES
from dynamo_scaling.traces import read_trace, scale_rate, window
from scaler.profile import bundled_profile
from scaler.replay.runner import Setting, run_policy
from scaler.replay.scoring import feasible_keys, score

REPO = Path(__file__).resolve().parents[1]
SETS = {"dev": DEV, "held-out": HELD_OUT}
BASE, SUBJECT = "predictive", "predictive-online"


def trusted_after(run) -> float | None:
    """Trace seconds from the first decision until the first one sized from a trusted fit."""
    if not run.timeline:
        return None
    start = run.timeline[0].t_s
    return next((p.t_s - start for p in run.timeline if p.reason.endswith(", trusted")), None)


def run_window(fname: str, a: float, b: float, rate: float, startup: float, warmup: float) -> dict:
    trace = read_trace(TRACES / fname)
    reqs = scale_rate(window(trace, max(0.0, a - warmup), b), rate, seed=1)
    warm = a - max(0.0, a - warmup)
    setting = Setting(f"{fname}[{a:.0f}-{b:.0f}s] x{rate:g}", reqs, bundled_profile(), startup_s=startup,
                      warmup_s=warm)
    runs = {n: run_policy(setting, n) for n in ("ceiling", BASE, SUBJECT)}
    feasible = feasible_keys(runs["ceiling"])
    rows = {n: score(runs[n], setting.trace_name, feasible, setting.warmup_s) for n in (BASE, SUBJECT)}
    base, online = rows[BASE], rows[SUBJECT]
    return {
        "trace": setting.trace_name, "startup_s": startup, "warmup_s": warm,
        "profiled_attainment": base["feasible_attainment"], "profiled_gpu_hours": base["gpu_hours"],
        "online_attainment": online["feasible_attainment"], "online_gpu_hours": online["gpu_hours"],
        "gpu_hours_ratio": online["gpu_hours"] / base["gpu_hours"] if base["gpu_hours"] > 0 else None,
        "attainment_ratio": (online["feasible_attainment"] / base["feasible_attainment"]
                             if base["feasible_attainment"] > 0 else None),
        "trusted_after_s": trusted_after(runs[SUBJECT]),
        "profiled_max_gpus": base["max_gpus"], "online_max_gpus": online["max_gpus"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=["dev", "held-out", "both"], default="dev",
                   help="which frozen windows (tune only on dev)")
    p.add_argument("--startup", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=300.0, help="warm scoring: seconds played before the window")
    args = p.parse_args()
    started = time.monotonic()
    chosen = ["dev", "held-out"] if args.set == "both" else [args.set]
    out: dict[str, list[dict]] = {}
    lines = ["| set | trace | scoring | profiled att. | profiled GPU-h | online att. | online GPU-h | "
             "GPU-h ratio | att. ratio | trusted after s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for set_name in chosen:
        out[set_name] = []
        for fname, a, b, rate in SETS[set_name]:
            for scoring, warmup in (("cold", 0.0), ("warm", args.warmup)):
                print(f"[{set_name}] {fname}[{a:.0f}-{b:.0f}s] {scoring} ...", flush=True)
                row = {"set": set_name, "scoring": scoring, **run_window(fname, a, b, rate, args.startup, warmup)}
                out[set_name].append(row)
                tr = row["trusted_after_s"]
                lines.append(
                    f"| {set_name} | {row['trace']} | {scoring} | {row['profiled_attainment']:.3f} | "
                    f"{row['profiled_gpu_hours']:.2f} | {row['online_attainment']:.3f} | {row['online_gpu_hours']:.2f} | "
                    f"{row['gpu_hours_ratio']:.2f} | {row['attainment_ratio']:.3f} | "
                    f"{'never' if tr is None else f'{tr:.0f}'} |")
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "online_fit.json").write_text(json.dumps({"startup_s": args.startup, "warmup_s": args.warmup,
                                                         "baseline": BASE, "subject": SUBJECT, "sets": out}, indent=2))
    print("\n".join(lines))
    print(f"\n{sum(len(v) for v in out.values())} windows in {time.monotonic() - started:.0f} s; "
          f"written to {results}/online_fit.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
