"""Three deployments on one tight GPU budget, replayed together in Dynamo's replay engine
(scaler/replay/fleet.py): a shared budget by priority against a fixed split of the same budget
(fixed fleets, in proportion to each one's mean need) and against each planner alone with its
split as its own GPU budget.

Deployments (held-out windows of benchmarks/replay.py, each after a warm-up of the same trace
that is played but neither scored nor billed), highest priority first:
  code  : Azure code trace 1200-2400 s, rate x4, priority 2
  chat  : Mooncake trace 600-1030 s, rate x2, priority 1
  batch : Azure code trace 2400-3436 s, rate x4, priority 0
Each deployment's clock starts at its first request, so the windows overlap from the start; the
shorter one ends first and its GPUs go back to the pool.

Prints a table and writes benchmarks/results/NAME.{json,md} (default NAME fleet_budget).
Usage: .venv/bin/python benchmarks/fleet_budget.py [--budget 18] [--startup 60] [--warmup 300]
       [--quick] [--name fleet_budget]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scaler.profile import bundled_profile
from scaler.replay.fleet import FleetSpec, align, compare
from dynamo_scaling.traces import read_trace, scale_rate, window

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "traces"
# (name, trace, scored window start s, end s, rate scale, priority)
DEPLOYMENTS = [
    ("code", "azure_llm_2023_code.csv", 1200.0, 2400.0, 4.0, 2),
    ("chat", "mooncake_synthetic.jsonl", 600.0, 1030.0, 2.0, 1),
    ("batch", "azure_llm_2023_code.csv", 2400.0, 3436.0, 4.0, 0),
]


def specs(warmup_s: float, quick: bool = False, only: list[str] | None = None) -> list[FleetSpec]:
    out = []
    for name, fname, a, b, rate, prio in DEPLOYMENTS:
        if only and name not in only:
            continue
        start = max(0.0, a - warmup_s)
        end = min(b, a + 300.0) if quick else b
        reqs, shift = align(scale_rate(window(read_trace(TRACES / fname), start, end), rate, seed=1))
        out.append(FleetSpec(name, reqs, prio, scored_from_s=max(0.0, (a - start) - shift)))
    return out


def table(s: dict) -> list[str]:
    names = list(s["priorities"])
    lines = [(f"Budget {s['budget']} GPUs (sum of peak needs {sum(s['peak_need_gpus'].values())}, of mean needs "
              f"{sum(s['mean_need_gpus'].values()):.1f}); start-up {s['startup_s']:.0f} s; planner `{s['policy']}`; "
              f"fixed split {s['split']}."), "",
             ("| mode | " + " | ".join(f"{n} (prio {s['priorities'][n]}) att. / GPU-h" for n in names)
              + " | total att. | total GPU-h | peak fleet GPUs |"),
             "|---|" + "---|" * (len(names) + 3)]
    for mode, m in s["modes"].items():
        cells = [f"{m['deployments'][n]['feasible_attainment']:.3f} / {m['deployments'][n]['gpu_hours']:.2f}"
                 for n in names]
        t = m["total"]
        lines.append(f"| {mode} | " + " | ".join(cells)
                     + f" | {t['feasible_attainment']:.3f} | {t['gpu_hours']:.2f} | {t['peak_fleet_gpus']} |")
    lines += ["", f"Shared budget: {s['shared_rounds']} rounds; share of rounds BudgetLimited: "
              + ", ".join(f"{n} {v:.0%}" for n, v in s["shared_limited_share"].items())
              + f"; fewest GPUs targeted per deployment: {s['shared_min_target']}; most targeted in one round: "
              f"{s['shared_max_target_sum']}.", ""]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, default=18, help="GPUs shared by all deployments")
    p.add_argument("--startup", type=float, default=60.0, help="worker start-up time (s)")
    p.add_argument("--warmup", type=float, default=300.0, help="seconds played before each window, not scored")
    p.add_argument("--quick", action="store_true", help="first 5 minutes of each window only")
    p.add_argument("--only", nargs="+", default=None, help="only these deployments")
    p.add_argument("--name", default="fleet_budget", help="results file name (benchmarks/results/NAME.{json,md})")
    args = p.parse_args()
    started = time.monotonic()
    res = compare(specs(args.warmup, args.quick, args.only), args.budget, bundled_profile(),
                  startup_s=args.startup, progress=lambda m: print(m, flush=True))
    s = res["summary"]
    s["warmup_s"] = args.warmup
    s["windows"] = [d for d in DEPLOYMENTS if not args.only or d[0] in args.only]
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(s, indent=2))
    lines = table(s)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"done in {time.monotonic() - started:.0f} s; written to {out}/{args.name}.json and {args.name}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
