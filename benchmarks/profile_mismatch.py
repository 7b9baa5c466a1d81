"""The planner handed a profile that is wrong: workers `speed` times faster than the replay engine's
(prefill throughput and decode throughput times speed, TTFT and ITL over it), on the DEV windows of
benchmarks/replay.py, against the same planner with the right profile in the same run. What is
measured is how much of the error each headroom setting wins back from what it observes (the
default's mean-latency headroom, the error-budget loop, none), with each prefill model.

A real profile is measured on other hardware, another engine version, other settings; the replay
benchmarks hand every planner the engine's own profile, which hides the headroom's job.
Prints a table and writes benchmarks/results/profile_mismatch.json.
Usage: .venv/bin/python benchmarks/profile_mismatch.py [--speeds 1 2 0.5] [--startup 60] [--target 0.99]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks import criteria
from benchmarks.replay import SETS, TRACES
from scaler.planner.predictive import PredictivePlanner
from scaler.profile import DecodeProfile, PerformanceProfile, PrefillProfile, bundled_profile
from scaler.replay import policies
from scaler.replay.runner import Setting, run_policy
from scaler.replay.scoring import feasible_keys, score
from dynamo_scaling.traces import read_trace, scale_rate, window

REPO = Path(__file__).resolve().parents[1]
WARMUP_S = 300.0
VARIANTS = {
    "default": {},
    "default, error budget": {"headroom": "error_budget"},
    "larger, no headroom": {"prefill_routing": "larger", "max_correction": 1.0},
    "larger, error budget": {"prefill_routing": "larger", "headroom": "error_budget"},
}


def scaled(profile: PerformanceProfile, speed: float) -> PerformanceProfile:
    """The profile of workers `speed` times as fast (KV capacity unchanged)."""
    p, d = profile.prefill, profile.decode
    return PerformanceProfile(
        PrefillProfile(p.isl, p.ttft_ms / speed, p.thpt_per_gpu * speed),
        DecodeProfile(d.kv_usage, d.context_length, d.itl_ms / speed, d.thpt_per_gpu * speed, d.max_kv_tokens),
        profile.gpus_per_prefill_worker, profile.gpus_per_decode_worker, source=f"{profile.source}, x{speed:g} speed")


def _register(name: str, settings: dict, profile: PerformanceProfile) -> None:
    def make(ctx: policies.RunContext) -> PredictivePlanner:
        return PredictivePlanner(profile, policies.planner_config(ctx, **settings), name=name)
    policies.register_policy(name, make)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speeds", type=float, nargs="+", default=[1.0, 2.0, 0.5],
                   help="how much faster the profile says workers are than they are")
    p.add_argument("--startup", type=float, default=60.0)
    p.add_argument("--target", type=float, default=0.99)
    args = p.parse_args()
    if any(s <= 0 for s in args.speeds):
        p.error("--speeds: every factor must be > 0")
    right = bundled_profile()
    runs = [(speed, variant) for speed in args.speeds for variant in VARIANTS]
    for speed, variant in runs:
        _register(f"{variant} @ x{speed:g}", VARIANTS[variant], scaled(right, speed))
    rows = []
    for fname, a, b, rate in SETS["dev"]:
        label = criteria.label((fname, a, b, rate))
        reqs = scale_rate(window(read_trace(TRACES / fname), a - WARMUP_S, b), rate, seed=1)
        setting = Setting(label, reqs, right, startup_s=args.startup, warmup_s=WARMUP_S, attainment_target=args.target)
        print(f"{label}: ceiling run", flush=True)
        feasible = feasible_keys(run_policy(setting, "ceiling"))
        for k, (speed, variant) in enumerate(runs, 1):
            t0 = time.time()
            r = score(run_policy(setting, f"{variant} @ x{speed:g}"), label, feasible, WARMUP_S)
            rows.append({"trace": label, "speed": speed, "variant": variant,
                         "feasible_attainment": r["feasible_attainment"], "gpu_hours": r["gpu_hours"]})
            print(f"  [{k}/{len(runs)}] profile x{speed:g}, {variant}: attainment {r['feasible_attainment']:.3f}, "
                  f"{r['gpu_hours']:.2f} GPU-h ({time.time() - t0:.0f} s)", flush=True)
    lines = ["| window | profile speed | " + " | ".join(VARIANTS) + " |", "|---|---|" + "---|" * len(VARIANTS)]
    for label in dict.fromkeys(r["trace"] for r in rows):
        for speed in args.speeds:
            cells = [next(r for r in rows if r["trace"] == label and r["speed"] == speed and r["variant"] == v)
                     for v in VARIANTS]
            lines.append(f"| {label} | x{speed:g} | "
                         + " | ".join(f"{c['feasible_attainment']:.3f} / {c['gpu_hours']:.2f}" for c in cells) + " |")
    print("attainment / GPU-h\n" + "\n".join(lines))
    out = REPO / "benchmarks" / "results" / "profile_mismatch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"startup_s": args.startup, "target": args.target, "rows": rows}, indent=1))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
