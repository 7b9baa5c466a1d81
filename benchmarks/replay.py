"""Every policy on both bundled traces (traces/), start-up delays 0, 60 and 120 s, inside Dynamo's replay
engine, on frozen sets of windows: DEV (what the planner may be tuned on) and HELD_OUT (what it
is reported on, never tuned on), and a second such pair on two more traces, DEV2 and HELD_OUT2
(`--set dev2`, `--set held-out2`), and HELD_BACK (`--set held-back`), kept for judging the next
change of a default. See the comments above DEV, DEV2 and HELD_BACK for how the splits were made.

Each window is preceded by a warm-up (default 300 s of the same trace) that is played but neither
scored nor billed, so every policy enters the window in the state its own decisions led to rather
than with an arbitrary initial fleet.

Besides the policies, each setting gets references sized for an attainment (see
scaler/replay/references.py): the oracle (perfect foresight) and a fixed fleet, with the
smallest capacity factor that reaches (a) the predictive planner's own attainment and (b) the
attainment target (`--target`, default 0.99, which the predictive planners are also given).
`predictive / oracle@same` is then the GPU-hour cost of not knowing the future at equal quality.

Among the policies, `static-prior` (benchmarks/prior_fleet.py) is the fixed fleet sized from the
warm-up's load alone, beside `static`, sized for the window's own peak in hindsight.

Where the optional environment of benchmarks/dynamo_planner is installed, the policies include
Dynamo 1.6.1's own planner code (`dynamo-own-load`, `dynamo-own-throughput`), and a table sets each
re-implemented Dynamo baseline beside the real code it stands for.

For each cell the held-out verdict says whether another policy reaches at least predictive's
attainment on no more GPU-hours (then predictive is dominated there), and a last table judges
every cell against the planner's acceptance criteria (benchmarks/criteria.py; not with --quick or
--no-references).

The same judged comparison runs on a trace of one's own instead of the frozen sets: `--trace FILE`
(Mooncake JSONL or Azure CSV), optionally `--window START:END` (the scored seconds; default: all
that follows the warm-up) and `--rate-scale K`. Its cells are the set `trace`.

Prints markdown tables and writes benchmarks/results/replay.{json,md} and the attainment / GPU-hours
frontier (scaler/replay/frontier.py), one panel per cell, to benchmarks/results/replay-frontier.png.
Usage: .venv/bin/python benchmarks/replay.py [--set dev|held-out|both | --trace FILE [--window A:B] [--rate-scale K]]
       [--startup 0 60 120] [--warmup 300] [--router round_robin|kv_router] [--target 0.99]
       [--ttft-ms 500] [--itl-ms 50] [--quick]
       [--no-references] [--policies NAME ...] [--subject NAME] [--name FILE] [--out DIR] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scaler.profile import PerformanceProfile, bundled_profile
from benchmarks import criteria
from benchmarks.dynamo_planner import baseline as _dynamo_own  # noqa: F401  registers dynamo-own-* where installed
from benchmarks import prior_fleet  # noqa: F401  registers static-prior
from scaler.replay import frontier, policies
from scaler.replay.scoring import feasible_keys
from scaler.replay.references import sized_for
from scaler.replay.engine import DEFAULT_ROUTER_MODE, ROUTER_MODES
from scaler.replay.runner import Setting, compare
from dynamo_scaling.traces import TraceError, duration_s, parse_window, read_trace, scale_rate, window

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "traces"
# (file, scored window start s, end s, rate scale): rate scales chosen so the peak needs 4-16 GPUs.
# FROZEN before any tuning of the planner's closed loop and burst headroom; never tune on HELD_OUT.
# Development so far used the first 10 minutes of each trace and the bundled demo slice (the first
# 20 minutes of the Azure trace), so those parts are DEV; the held-out windows are the reporting
# windows used before the split. Scored windows of the two sets do not overlap (a held-out window's
# warm-up may replay the end of a dev window; it is played, not scored).
DEV = [
    ("azure_llm_2023_code.csv", 300.0, 1200.0, 4.0),
    ("mooncake_synthetic.jsonl", 300.0, 600.0, 2.0),
]
HELD_OUT = [
    ("mooncake_synthetic.jsonl", 600.0, 1030.0, 2.0),
    ("azure_llm_2023_code.csv", 1200.0, 2400.0, 4.0),
    ("azure_llm_2023_code.csv", 2400.0, 3436.0, 4.0),
]
# A second pair, from two traces no policy had played (the Mooncake conversation trace at its own
# rate, the Azure 2023 conversation trace at 10x), frozen before any run on them but one whole-trace
# run of `predictive` with its defaults: the first 25 minutes of each are for tuning, the part from
# minute 30 to the end only for reporting.
DEV2 = [
    ("mooncake_conversation.jsonl", 300.0, 1500.0, 1.0),
    ("azure_llm_2023_conv.csv", 300.0, 1500.0, 10.0),
]
HELD_OUT2 = [
    ("mooncake_conversation.jsonl", 1800.0, 3538.0, 1.0),
    ("azure_llm_2023_conv.csv", 1800.0, 3503.0, 10.0),
]
# Held back to judge the next change of a default, by a rule written before it is played; frozen
# before any run on it. No trace is left that no policy has played, so these are the reporting
# windows at rates no set plays them at: they test another load level (another fleet size, other
# clumps against it), not new arrival patterns, and are no substitute for a new trace.
HELD_BACK = [
    ("mooncake_synthetic.jsonl", 600.0, 1030.0, 3.0),
    ("azure_llm_2023_code.csv", 1200.0, 2400.0, 6.0),
    ("azure_llm_2023_code.csv", 2400.0, 3436.0, 6.0),
    ("mooncake_conversation.jsonl", 1800.0, 3538.0, 0.7),
    ("azure_llm_2023_conv.csv", 1800.0, 3503.0, 6.0),
]
CASES = HELD_OUT  # the reporting windows
SETS = {"dev": DEV, "held-out": HELD_OUT, "dev2": DEV2, "held-out2": HELD_OUT2, "held-back": HELD_BACK}


def _fmt_ref(ref) -> str:
    r = ref.row
    if not ref.reached:
        return f"not reached (x{r['headroom']:.2f}: {r['feasible_attainment']:.3f}, {r['gpu_hours']:.2f} GPU-h)"
    return f"x{ref.headroom:.2f}: {r['feasible_attainment']:.3f}, {r['gpu_hours']:.2f} GPU-h"


def _dominators(pred: dict, rows: list[dict]) -> list[str]:
    """Policies (other than the subject itself, the planner's variants and the references) that
    reach at least its attainment on no more GPU-hours."""
    return [r["planner"] for r in rows
            if r["planner"] != pred["planner"] and not r["planner"].startswith("predictive")
            and r["planner"] not in ("ceiling", "oracle")
            and r["feasible_attainment"] >= pred["feasible_attainment"] and r["gpu_hours"] <= pred["gpu_hours"]]


def own_window(trace: Path, text: str | None, rate: float | None, warmup: float,
               frozen: str | None) -> tuple[str, float, float, float]:
    """A window of a trace of one's own, as the frozen sets hold theirs (file, scored start s, end s,
    rate scale); ValueError naming the flag for anything that cannot be played."""
    if frozen is not None:
        raise ValueError("--set and --trace: give one (the frozen windows, or a trace of your own)")
    rate = 1.0 if rate is None else rate
    if rate <= 0:
        raise ValueError(f"--rate-scale must be > 0, got {rate:g}")
    try:
        reqs = read_trace(trace)
    except (OSError, TraceError) as exc:
        raise ValueError(f"--trace: {exc}") from None
    end = duration_s(reqs)
    if text is None:
        if warmup >= end:
            raise ValueError(f"--warmup {warmup:g} s leaves nothing of the trace ({end:.0f} s) to score; "
                             "give --window or a shorter --warmup")
        a, b = warmup, end + 1e-3  # the last request is scored too
    else:
        a, b = parse_window(text)
        if a > end:
            raise ValueError(f"--window starts at {a:g} s, after the trace's last request ({end:.0f} s)")
        if not window(reqs, a, b):
            raise ValueError(f"--window {text}: the trace has no request in it, nothing to score")
    return str(trace.resolve()), a, b, rate


def _run_set(set_name: str, cases: list, args, names: list[str],
             frontiers: list[frontier.Frontier]) -> tuple[list[dict], list[dict]]:
    rows: list[dict] = []
    refs: list[dict] = []
    total = len(cases) * len(args.startup)
    profile = PerformanceProfile.load(args.profile) if args.profile else bundled_profile()
    k = 0
    for fname, a, b, rate in cases:
        trace = read_trace(TRACES / fname)
        end = min(b, a + 300) if args.quick else b
        reqs = scale_rate(window(trace, max(0.0, a - args.warmup), end), rate, seed=1)
        warm = a - max(0.0, a - args.warmup)
        for startup in args.startup:
            k += 1
            label = criteria.label((fname, a, b, rate))
            print(f"[{set_name} {k}/{total}] {label}, start-up {startup:.0f} s, warm-up {warm:.0f} s ...", flush=True)
            setting = Setting(label, reqs, profile, startup_s=startup, warmup_s=warm, ttft_ms=args.ttft_ms,
                              itl_ms=args.itl_ms, router_mode=args.router, attainment_target=args.target)
            # only the ceiling's per-request results are read after scoring; the others go at once
            res, runs = compare(setting, names, keep=())
            feasible = feasible_keys(runs.pop("ceiling"))
            for r in res:
                r["set"] = set_name
            rows += res
            pred = next(r for r in res if r["planner"] == args.subject)
            entry = {"set": set_name, "trace": label, "startup_s": startup,
                     "predictive_attainment": pred["feasible_attainment"], "predictive_gpu_hours": pred["gpu_hours"],
                     "predictive_scale_events": pred["scale_events"], "predictive_misses": pred["feasible_misses"],
                     "dominated_by": _dominators(pred, res)}
            refs.append(entry)
            curves: dict[str, list[dict]] = {}  # every sized run: the references' frontier curves
            frontiers.append(frontier.Frontier(f"{set_name}: {label}, start-up {startup:.0f} s",
                                               frontier.policy_points(res), ()))
            if args.no_references:
                continue
            for kind in ("oracle", "fixed"):
                for tag, target in (("same", pred["feasible_attainment"]), ("high", args.target)):
                    ref = sized_for(kind, setting, target, feasible,
                                    progress=lambda m: print(f"    {m}", flush=True))
                    curves.setdefault(kind, []).extend(ref.runs)
                    entry[f"{kind}_{tag}"] = {"target": target, "headroom": ref.headroom,
                                              "reached": ref.reached, **{key: ref.row[key] for key in (
                                                  "feasible_attainment", "gpu_hours", "max_gpus", "scale_events")}}
                    entry[f"{kind}_{tag}_text"] = _fmt_ref(ref)
            same = entry["oracle_same"]
            entry["predictive_vs_oracle_same"] = (pred["gpu_hours"] / same["gpu_hours"]
                                                  if same["reached"] and same["gpu_hours"] > 0 else None)
            fixed = entry["fixed_same"]
            entry["predictive_vs_fixed_same"] = (pred["gpu_hours"] / fixed["gpu_hours"]
                                                 if fixed["reached"] and fixed["gpu_hours"] > 0 else None)
            frontiers[-1] = frontier.build(frontiers[-1].title, res, curves)
    return rows, refs


def _tables(set_name: str, rows: list[dict], refs: list[dict], high: float) -> list[str]:
    ratio = lambda v: f"{v:.2f}x" if v is not None else "-"  # noqa: E731
    lines = [f"### {set_name}", "",
             "| trace | start-up s | planner | feasible att. | SLA att. | GPU-h | vs oracle | peak GPUs | scale events |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['trace']} | {r['startup_s']:.0f} | {r['planner']} | {r['feasible_attainment']:.3f} | "
                     f"{r['sla_attainment']:.3f} | {r['gpu_hours']:.2f} | {r.get('gpu_hours_vs_oracle', 0):.2f}x | "
                     f"{r['max_gpus']} | {r['scale_events']} |")
    lines += ["", "Predictive per cell (dominated by: policies with at least its attainment on no more GPU-hours):",
              "Its misses among feasible requests: TTFT on prompts an idle worker prefills in time, TTFT on "
              "prompts met only from a prefix cache (too long for an idle worker without it), ITL.",
              "", "| trace | start-up s | predictive | scale events | misses: TTFT / TTFT cached / ITL | dominated by |",
              "|---|---|---|---|---|---|"]
    for e in refs:
        m = e["predictive_misses"]
        lines.append(f"| {e['trace']} | {e['startup_s']:.0f} | {e['predictive_attainment']:.3f}, "
                     f"{e['predictive_gpu_hours']:.2f} GPU-h | {e['predictive_scale_events']} | "
                     f"{m['ttft']} / {m['ttft_cached']} / {m['itl']} | {', '.join(e['dominated_by']) or 'none'} |")
    sized = [e for e in refs if "oracle_same" in e]
    if sized:
        lines += ["", "References sized for an attainment (capacity factor: feasible attainment, GPU-h):", "",
                  "| trace | start-up s | predictive | oracle at predictive's att. | predictive / it | "
                  f"fixed fleet at predictive's att. | predictive / it | oracle for {high:g} | fixed fleet for {high:g} |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in sized:
            lines.append(f"| {e['trace']} | {e['startup_s']:.0f} | {e['predictive_attainment']:.3f}, "
                         f"{e['predictive_gpu_hours']:.2f} GPU-h | {e['oracle_same_text']} | "
                         f"{ratio(e['predictive_vs_oracle_same'])} | {e['fixed_same_text']} | "
                         f"{ratio(e['predictive_vs_fixed_same'])} | {e['oracle_high_text']} | {e['fixed_high_text']} |")
    return lines + _own_vs_reimplemented(rows) + [""]


# each re-implemented Dynamo baseline and the mode of Dynamo's own planner code it stands for
OWN_PAIRS = (("dynamo-load", "dynamo-own-load"), ("dynamo-throughput", "dynamo-own-throughput"))


def own_vs_reimplemented(rows: list[dict]) -> list[dict]:
    """Per cell, each re-implementation beside the real planner code: GPU-hours and feasible
    attainment of both, and the ratios re-implementation / real."""
    by = {(r["trace"], r["startup_s"], r["planner"]): r for r in rows}
    out = []
    for (trace, startup, name), ours in by.items():
        for mine, real in OWN_PAIRS:
            own = by.get((trace, startup, real))
            if name == mine and own is not None:
                out.append({"trace": trace, "startup_s": startup, "reimplemented": mine, "dynamo_code": real,
                            "gpu_hours": ours["gpu_hours"], "own_gpu_hours": own["gpu_hours"],
                            "attainment": ours["feasible_attainment"], "own_attainment": own["feasible_attainment"],
                            "gpu_hours_ratio": ours["gpu_hours"] / own["gpu_hours"] if own["gpu_hours"] > 0 else None,
                            "attainment_ratio": (ours["feasible_attainment"] / own["feasible_attainment"]
                                                 if own["feasible_attainment"] > 0 else None)})
    return out


def _own_vs_reimplemented(rows: list[dict]) -> list[str]:
    pairs = own_vs_reimplemented(rows)
    if not pairs:
        return []

    def ratio(v: float | None) -> str:
        return f"{v:.2f}" if v is not None else "-"

    lines = ["", ("Re-implemented Dynamo baselines against Dynamo 1.6.1's own planner code "
                  "(benchmarks/dynamo_planner; ratio = re-implementation / real code):"), "",
             ("| trace | start-up s | re-implementation | GPU-h | feasible att. | Dynamo's code | GPU-h | "
              "feasible att. | GPU-h ratio | attainment ratio |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['trace']} | {p['startup_s']:.0f} | {p['reimplemented']} | {p['gpu_hours']:.2f} | "
                     f"{p['attainment']:.3f} | {p['dynamo_code']} | {p['own_gpu_hours']:.2f} | "
                     f"{p['own_attainment']:.3f} | {ratio(p['gpu_hours_ratio'])} | {ratio(p['attainment_ratio'])} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=[*SETS, "both"], default=None,
                   help="which frozen windows to run (tune only on dev and dev2; held-back is kept for judging the next "
                        "change of a default; default both: dev and held-out)")
    p.add_argument("--trace", type=Path, default=None,
                   help="a trace of one's own (Mooncake JSONL or Azure CSV) instead of the frozen sets")
    p.add_argument("--window", default=None, metavar="START:END",
                   help="with --trace: the seconds scored (default: all that follows the warm-up)")
    p.add_argument("--rate-scale", type=float, default=None, help="with --trace: arrival-rate multiplier (default 1)")
    p.add_argument("--startup", type=float, nargs="+", default=[0.0, 60.0, 120.0])
    p.add_argument("--warmup", type=float, default=300.0, help="seconds played before each window, not scored")
    p.add_argument("--router", choices=ROUTER_MODES, default=DEFAULT_ROUTER_MODE,
                   help="how the engine hands requests to workers (kv_router: as a frontend with --router-mode kv)")
    p.add_argument("--target", type=float, default=Setting.attainment_target,
                   help="attainment_target of the predictive planners, and the attainment the second pair of "
                        "references is sized for (default %(default)s)")
    p.add_argument("--ttft-ms", type=float, default=Setting.ttft_ms, help="TTFT target (default %(default)s)")
    p.add_argument("--itl-ms", type=float, default=Setting.itl_ms, help="ITL target (default %(default)s)")
    p.add_argument("--profile", type=Path, default=None,
                   help="the profile every policy and reference is given (default: the bundled one)")
    p.add_argument("--quick", action="store_true", help="first 5 minutes of each window only")
    p.add_argument("--no-references", action="store_true", help="skip the attainment-sized references")
    p.add_argument("--policies", nargs="+", default=None, help="only these policies (default: all)")
    p.add_argument("--name", default="replay", help="results file name (OUT/NAME.{json,md})")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                   help="results directory (default benchmarks/results)")
    p.add_argument("--plot", type=Path, default=None,
                   help="frontier PNG, one panel per cell (default: OUT/NAME-frontier.png)")
    p.add_argument("--subject", default="predictive",
                   help="the planner the verdicts and sized references are for (e.g. predictive-attainment)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module that registers more policies, e.g. benchmarks.tail_planner; repeatable")
    args = p.parse_args()
    if not 0 < args.target < 1:
        p.error(f"--target must be in (0, 1), got {args.target:g}")
    for flag, value in (("--ttft-ms", args.ttft_ms), ("--itl-ms", args.itl_ms)):
        if value <= 0:
            p.error(f"{flag} must be > 0, got {value:g}")
    sets = dict(SETS)
    if args.trace is not None:
        try:
            sets["trace"] = [own_window(args.trace, args.window, args.rate_scale, args.warmup, args.set)]
        except ValueError as exc:
            p.error(str(exc))
    elif args.window is not None or args.rate_scale is not None:
        p.error("--window and --rate-scale apply to --trace only")
    policies.load_plugins(args.plugin)
    names = [n for n in (args.policies or policies.names()) if n != "ceiling"]
    if args.warmup < prior_fleet.WINDOW_S and "static-prior" in names:
        if args.policies:
            p.error(f"static-prior needs --warmup of at least {prior_fleet.WINDOW_S:.0f} s (it is sized from the "
                    "load played before each window)")
        names.remove("static-prior")
    if args.subject not in names:
        names.insert(0, args.subject)
    started = time.monotonic()
    chosen = ["trace"] if args.trace is not None else ["dev", "held-out"] if args.set in (None, "both") else [args.set]
    results: dict[str, dict] = {}
    lines = [f"Scored after a {args.warmup:.0f} s warm-up; GPU-hours billed over the scored window only. "
             f"Per-cell verdicts and sized references are for `{args.subject}` (\"predictive\" in their headers).", ""]
    frontiers: list[frontier.Frontier] = []
    for set_name in chosen:
        rows, refs = _run_set(set_name, sets[set_name], args, names, frontiers)
        results[set_name] = {"windows": sets[set_name], "policies": rows, "references": refs,
                             "own_vs_reimplemented": own_vs_reimplemented(rows)}
        lines += _tables(set_name, rows, refs, args.target)
    record = {"warmup_s": args.warmup, "subject": args.subject, "attainment_target": args.target,
              "ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms,
              "profile": str(args.profile) if args.profile else "bundled",
              "sets": results}
    if not (args.quick or args.no_references):
        verdicts = criteria.judge(record)
        lines += [f"### Acceptance criteria, cell by cell (`{args.subject}`; benchmarks/criteria.py)", "",
                  *criteria.table(verdicts), "", *criteria.summary(verdicts), ""]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    png = frontier.plot(frontiers, args.plot or out / f"{args.name}-frontier.png",
                        "Feasible SLA attainment against GPU-hours: policies as points, references as curves "
                        "through their sized runs (capacity factor)")
    table = "\n".join(lines)
    (out / f"{args.name}.md").write_text(table + "\n")
    print(table)
    runs = sum(len(r["policies"]) for r in results.values())
    print(f"\n{runs} policy runs in {time.monotonic() - started:.0f} s; "
          f"written to {out}/{args.name}.json and {args.name}.md, frontier {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
