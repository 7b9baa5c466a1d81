"""`dynamo-scaling demo`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "data" / "demo_trace_azure_code_20min.csv"
# a re-implemented Dynamo baseline -> the policy that runs Dynamo's own planner code in that mode
OWN_CODE = {"dynamo-throughput": "dynamo-own-throughput", "dynamo-load": "dynamo-own-load"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="the predictive planner beside a baseline on a bundled trace (no cluster needed; "
                     "`devcluster demo` runs the whole loop live)",
        description="Replays a trace in Dynamo's replay engine with the predictive planner and a baseline "
                    "(and Dynamo's own planner code where benchmarks/dynamo_planner's environment is "
                    "installed), shows them live side by side and writes a report (markdown + JSON, a "
                    "timeline and the attainment / GPU-hours frontier against a fixed fleet sized to the "
                    "planner's attainment).")
    p.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="Mooncake JSONL or Azure CSV trace")
    p.add_argument("--planner", default="predictive", help="planner to show (default predictive)")
    p.add_argument("--baseline", default="dynamo-throughput", help="baseline beside it (default dynamo-throughput)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module that registers more planners, e.g. benchmarks.dynamo_planner.baseline (Dynamo's own planner code, where its optional environment is installed); repeatable")
    p.add_argument("--no-frontier", action="store_true",
                   help="skip sizing the fixed fleet to the planner's attainment and the frontier plot")
    p.add_argument("--rate-scale", type=float, default=5.0, help="arrival-rate multiplier (default 5)")
    p.add_argument("--startup-delay", type=float, default=60.0, metavar="S", help="worker start-up time (default 60)")
    p.add_argument("--ttft-ms", type=float, default=500.0)
    p.add_argument("--itl-ms", type=float, default=50.0)
    p.add_argument("--attainment-target", type=float, default=0.99,
                   help="share of requests the planner sizes to meet both targets (default 0.99)")
    p.add_argument("--speed", type=float, default=30.0,
                   help="simulated seconds per wall second in the live view (default 30); 0 skips the live view")
    p.add_argument("--out", type=Path, default=Path("reports") / "demo", help="report directory")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from scaler.profile import bundled_profile
    from scaler.replay import frontier, policies
    from scaler.replay.scoring import feasible_keys
    from scaler.replay.references import sized_for
    from scaler.replay.runner import Setting, compare
    from dynamo_scaling.traces import TraceError, read_trace, scale_rate

    from scaler.demo import live_view, report
    from scaler.replay import timeline

    try:
        policies.load_plugins(args.plugin)
    except ValueError as exc:
        return _fail(str(exc))
    for flag, value in (("--rate-scale", args.rate_scale), ("--ttft-ms", args.ttft_ms), ("--itl-ms", args.itl_ms)):
        if value <= 0:
            return _fail(f"{flag} must be > 0")
    if not 0 < args.attainment_target < 1:
        return _fail(f"--attainment-target must be in (0, 1), got {args.attainment_target:g}")
    if args.startup_delay < 0 or args.speed < 0:
        return _fail("--startup-delay and --speed must be >= 0")
    for flag, name in (("--planner", args.planner), ("--baseline", args.baseline)):
        if name not in policies.names():
            return _fail(f"{flag}: unknown planner {name!r}; choose one of {', '.join(policies.names())}")
    console = Console()
    try:
        reqs = scale_rate(read_trace(args.trace), args.rate_scale)
    except TraceError as exc:
        return _fail(str(exc))
    names = [args.planner, args.baseline]
    # Dynamo's own planner code beside its re-implementation, where its optional environment is installed
    own = OWN_CODE.get(args.baseline)
    if own in policies.names() and own not in names:
        names.append(own)
    console.print(f"[bold]dynamo-scaling demo[/bold]: {len(reqs)} requests from {args.trace.name} "
                  f"(x{args.rate_scale:g}), start-up {args.startup_delay:.0f} s; simulating "
                  f"{', '.join(names)} in Dynamo's replay engine ...")
    setting = Setting(args.trace.name, reqs, bundled_profile(), startup_s=args.startup_delay,
                      ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, attainment_target=args.attainment_target)
    started = time.monotonic()
    rows, runs = compare(setting, names, progress=lambda m: console.print(f"  {m}"))
    shown_rows = [r for r in rows if r["planner"] in names]
    fixed = None
    if not args.no_frontier:
        # what a fixed fleet needs for the planner's attainment: the cost of not scaling at all
        target = next(r for r in rows if r["planner"] == args.planner)["feasible_attainment"]
        console.print(f"  sizing a fixed fleet for {args.planner}'s attainment {target:.3f} ...")
        fixed = sized_for("fixed", setting, target, feasible_keys(runs["ceiling"]),
                          progress=lambda m: console.print(f"    {m}"))
    console.print(f"  simulated in {time.monotonic() - started:.1f} s")
    shown = {n: runs[n] for n in names}
    if args.speed > 0:
        live_view.play(shown, args.speed, console)
    args.out.mkdir(parents=True, exist_ok=True)
    png = timeline.plot(shown, args.out / "timeline.png",
                      f"{' vs '.join(names)} on {args.trace.name} x{args.rate_scale:g}")
    frontier_png = None
    if fixed is not None:
        frontier_png = frontier.plot([report.frontier_of(shown_rows, fixed, args.planner)], args.out / "frontier.png",
                                     f"{args.trace.name} x{args.rate_scale:g}, start-up {args.startup_delay:.0f} s")
        shown_rows.append(report.fixed_row(fixed, args.planner))
    md = report.markdown(shown_rows, png, {"trace": args.trace.name, "rate_scale": args.rate_scale,
                                           "startup_s": args.startup_delay, "ttft_ms": args.ttft_ms,
                                           "itl_ms": args.itl_ms, "attainment_target": args.attainment_target},
                         frontier_png, args.planner)
    (args.out / "report.md").write_text(md)
    (args.out / "results.json").write_text(json.dumps(shown_rows, indent=2))
    console.print(md.split("![")[0])
    console.print(f"report: {(args.out / 'report.md').resolve()}")
    return 0
