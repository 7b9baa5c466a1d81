"""Every policy on both shared traces, start-up delays 0, 60 and 120 s, inside Dynamo's replay
engine. The windows are held out from the parts used while developing the planner (the first
10 minutes of each trace and the bundled demo slice).

Prints a markdown table with ratios to the oracle and writes benchmarks/results/replay.{json,md}.
Usage: .venv/bin/python benchmarks/replay.py [--startup 0 60 120] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from scaler.profile import bundled_profile
from scaler.replay import policies
from scaler.replay.runner import Setting, compare
from scaler.replay.traces import read_trace, scale_rate, window

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(os.environ.get("DYNAMO_SCALING_TRACES", REPO.parent / "shared" / "traces"))
# (file, window start s, end s, rate scale): rate scales chosen so the peak needs 4-16 GPUs
CASES = [
    ("mooncake_synthetic.jsonl", 600.0, 1030.0, 2.0),
    ("azure_llm_2023_code.csv", 1200.0, 2400.0, 4.0),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--startup", type=float, nargs="+", default=[0.0, 60.0, 120.0])
    p.add_argument("--quick", action="store_true", help="first 5 minutes of each window only")
    args = p.parse_args()
    names = [n for n in policies.names() if n != "ceiling"]
    rows: list[dict] = []
    started = time.monotonic()
    total = len(CASES) * len(args.startup)
    k = 0
    for fname, a, b, rate in CASES:
        reqs = window(read_trace(TRACES / fname), a, min(b, a + 300) if args.quick else b)
        reqs = scale_rate(reqs, rate, seed=1)
        for startup in args.startup:
            k += 1
            label = f"{fname}[{a:.0f}-{b:.0f}s] x{rate:g}"
            print(f"[{k}/{total}] {label}, start-up {startup:.0f} s ...", flush=True)
            res, _ = compare(Setting(label, reqs, bundled_profile(), startup_s=startup), names)
            rows += res
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps(rows, indent=2))
    lines = ["| trace | start-up s | planner | feasible att. | SLA att. | GPU-h | vs oracle | peak GPUs | scale events |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['trace']} | {r['startup_s']:.0f} | {r['planner']} | {r['feasible_attainment']:.3f} | "
                     f"{r['sla_attainment']:.3f} | {r['gpu_hours']:.2f} | {r.get('gpu_hours_vs_oracle', 0):.2f}x | "
                     f"{r['max_gpus']} | {r['scale_events']} |")
    table = "\n".join(lines)
    (out / "replay.md").write_text(table + "\n")
    print(table)
    print(f"\n{len(rows)} runs in {time.monotonic() - started:.0f} s; written to {out}/replay.json and replay.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
