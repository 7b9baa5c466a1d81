"""`dynamo-scaling replay` and `dynamo-scaling profile`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from scaler.replay.engine import DEFAULT_ROUTER_MODE, ROUTER_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("replay", help="run planners on a trace inside Dynamo's replay engine",
                              description="Replays a trace (Mooncake JSONL or Azure CSV) with one planner, or all "
                                          "side by side with ratios to the oracle.")
    r.add_argument("--trace", type=Path, required=True)
    r.add_argument("--trace-format", choices=["azure", "mooncake"], default=None, help="default: detected")
    r.add_argument("--planner", default="predictive", help="a planner name, or 'all'")
    r.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module that registers more planners, e.g. benchmarks.dynamo_planner.baseline (Dynamo's own planner code, where its optional environment is installed); repeatable")
    r.add_argument("--profile", type=Path, default=None, help="profile JSON or Dynamo profiler npz (default: bundled)")
    r.add_argument("--rate-scale", type=float, default=1.0)
    r.add_argument("--time-scale", type=float, default=1.0)
    r.add_argument("--window", default=None, metavar="START:END", help="only this part of the trace, seconds")
    r.add_argument("--warmup", type=float, default=0.0, metavar="S",
                   help="play the first S seconds (of the window) without scoring them, so every planner "
                        "enters the scored part in the state its own decisions led to")
    r.add_argument("--startup-delay", type=float, default=60.0, metavar="S")
    r.add_argument("--ttft-ms", type=float, default=500.0)
    r.add_argument("--itl-ms", type=float, default=50.0)
    r.add_argument("--attainment-target", type=float, default=0.99,
                   help="share of requests the predictive planners size to meet both targets (default 0.99)")
    r.add_argument("--gpu-budget", type=int, default=None)
    r.add_argument("--router", choices=ROUTER_MODES, default=DEFAULT_ROUTER_MODE,
                   help="how the engine hands requests to workers (kv_router: as a frontend with --router-mode kv)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", type=Path, default=None, help="write the results here")
    r.add_argument("--plot", type=Path, default=None,
                   help="write the attainment / GPU-hours frontier PNG here: every planner a point, the oracle "
                        "and a fixed fleet as curves through runs at --curve-factors")
    r.add_argument("--curve-factors", type=float, nargs="+", default=None, metavar="F",
                   help="capacity factors of the oracle and fixed-fleet curves (default: 0.5 0.75 1 1.5 2 3)")
    r.add_argument("--timeline", type=Path, default=None, help="write a timeline PNG of the planners here")
    r.set_defaults(func=run_replay)

    p = subparsers.add_parser("profile", help="profile the replay engine's worker (prefill and decode sweep)")
    p.add_argument("--out", type=Path, required=True, help="profile file (.json, or .npz in Dynamo's format)")
    p.add_argument("--decode-sweep", choices=("burst", "steady"), default="burst",
                   help="decode points from a batch admitted at once (burst, as the bundled profile) or kept "
                        "decoding under Poisson arrivals (steady: what a served deployment sees)")
    p.set_defaults(func=run_profile)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run_replay(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from scaler.profile import PerformanceProfile, ProfileError, bundled_profile
    from scaler.replay import policies
    from scaler.replay.runner import Setting, compare
    from dynamo_scaling.traces import TraceError, parse_window, read_trace, scale_rate, scale_time, window

    try:
        policies.load_plugins(args.plugin)
    except ValueError as exc:
        return _fail(str(exc))
    for flag, v in (("--rate-scale", args.rate_scale), ("--time-scale", args.time_scale),
                    ("--ttft-ms", args.ttft_ms), ("--itl-ms", args.itl_ms)):
        if v <= 0:
            return _fail(f"{flag} must be > 0")
    if not 0 < args.attainment_target < 1:
        return _fail(f"--attainment-target must be in (0, 1), got {args.attainment_target:g}")
    if args.startup_delay < 0:
        return _fail("--startup-delay must be >= 0")
    if args.warmup < 0:
        return _fail("--warmup must be >= 0")
    if args.curve_factors is not None and any(f <= 0 for f in args.curve_factors):
        return _fail("--curve-factors must be > 0")
    if args.gpu_budget is not None and args.gpu_budget < 2:
        return _fail("--gpu-budget must be >= 2 (one worker per pool)")
    names = policies.names() if args.planner == "all" else [args.planner]
    for n in names:
        if n not in policies.names():
            return _fail(f"--planner: unknown planner {n!r}; choose one of {', '.join(policies.names())} or all")
    try:
        reqs = read_trace(args.trace, args.trace_format)
        if args.window:
            reqs = window(reqs, *parse_window(args.window))
        reqs = scale_time(scale_rate(reqs, args.rate_scale, args.seed), args.time_scale)
        profile = PerformanceProfile.load(args.profile) if args.profile else bundled_profile()
    except (TraceError, ProfileError, ValueError) as exc:
        return _fail(str(exc))
    if not reqs:
        return _fail("no requests left in the trace (check --window)")
    if args.warmup and all(r.timestamp_ms < args.warmup * 1000.0 for r in reqs):
        return _fail(f"--warmup {args.warmup:g} s leaves no request to score (the trace lasts "
                     f"{reqs[-1].timestamp_ms / 1000.0:.0f} s)")
    console = Console(stderr=True)
    setting = Setting(args.trace.name, reqs, profile, args.startup_delay, args.ttft_ms, args.itl_ms,
                      args.gpu_budget, args.seed, args.warmup, attainment_target=args.attainment_target,
                      router_mode=args.router)
    started = time.monotonic()
    rows, runs = compare(setting, names, progress=lambda m: console.print(m))
    shown = [r for r in rows if r["planner"] in names]
    table = Table(title=f"{args.trace.name} x{args.rate_scale:g}, start-up {args.startup_delay:.0f} s, "
                        f"TTFT {args.ttft_ms:.0f} ms, ITL {args.itl_ms:.0f} ms, target {args.attainment_target:g}"
                        + (f", scored after a {args.warmup:.0f} s warm-up" if args.warmup else ""))
    for col in ("planner", "SLA att.", "feasible att.", "misses TTFT/cached/ITL", "GPU-h", "vs oracle", "peak GPUs",
                "scale events", "TTFT p50/p99 ms", "ITL p50/p99 ms"):
        table.add_column(col)
    for r in shown:
        m = r["feasible_misses"]
        table.add_row(r["planner"], f"{r['sla_attainment']:.3f}", f"{r['feasible_attainment']:.3f}",
                      f"{m['ttft']}/{m['ttft_cached']}/{m['itl']}",
                      f"{r['gpu_hours']:.2f}", f"{r['gpu_hours_vs_oracle']:.2f}x" if "gpu_hours_vs_oracle" in r else "-",
                      str(r["max_gpus"]), str(r["scale_events"]),
                      f"{r['ttft_p50_ms']:.0f}/{r['ttft_p99_ms']:.0f}",
                      f"{r['itl_p50_ms']:.1f}/{r['itl_p99_ms']:.1f}" if r["itl_p50_ms"] is not None else "-")
    Console(width=max(160, Console().width)).print(table)
    console.print(f"done in {time.monotonic() - started:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows_out = [{**r, "router_mode": args.router, "attainment_target": args.attainment_target} for r in shown]
        args.json.write_text(json.dumps(rows_out if len(rows_out) > 1 else rows_out[0], indent=2))
    if args.timeline:
        from scaler.replay.timeline import plot

        plot({n: runs[n] for n in names}, args.timeline, f"{args.trace.name} x{args.rate_scale:g}")
    if args.plot:
        from scaler.replay import frontier
        from scaler.replay.scoring import feasible_keys

        feasible = feasible_keys(runs["ceiling"])
        factors = args.curve_factors or frontier.DEFAULT_FACTORS
        curves = {}
        for kind in frontier.CURVE_KINDS:
            console.print(f"{kind} curve at x{', x'.join(f'{f:g}' for f in factors)} ...")
            curves[kind] = frontier.curve_runs(kind, setting, feasible, factors)
        title = (f"{args.trace.name} x{args.rate_scale:g}, start-up {args.startup_delay:.0f} s, "
                 f"TTFT {args.ttft_ms:.0f} ms, ITL {args.itl_ms:.0f} ms")
        frontier.plot([frontier.build(title, shown, curves)], args.plot)
        console.print(f"frontier: {args.plot}", soft_wrap=True)
    return 0


def run_profile(args: argparse.Namespace) -> int:
    from scaler.replay.profiler import sweep

    if args.out.suffix not in (".json", ".npz"):
        return _fail("--out must end in .json or .npz")
    prof = sweep(progress=lambda m: print(m, file=sys.stderr, flush=True), decode=args.decode_sweep)
    prof.save(args.out)
    print(args.out)
    return 0
