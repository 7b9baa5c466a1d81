"""The planner's acceptance criteria, judged cell by cell from a results file of benchmarks/replay.py.

A cell is one window at one start-up delay. For the benchmark's subject (`predictive` unless
`--subject` said otherwise), at the attainment target it ran with (the replay default, 0.99):

1. GPU-hours <= 1.15x the oracle sized to the subject's own attainment;
2. GPU-hours below the fixed fleet sized to the same attainment, and <= 0.85x of it on bursty
   windows;
3. no other policy played (not the planner's own variants, not the references) reaches at least
   its attainment on no more GPU-hours;
4. attainment >= target - 0.005 where the oracle or the fixed fleet reaches the target within 2x
   its profile-sized capacity (elsewhere the cell is exempt), and GPU-hours grow with the target:
   given results files run at different targets (`benchmarks/replay.py --target 0.95`), each cell
   they share is compared across them.

Bursty: the oracle's need (prefill + decode GPUs per 30 s window over the scored span, the tail
model of need at 0.99, scaler/replay/needs.py) peaks at >= 1.5x its mean. A fleet held at that
peak then leaves a third or more of its GPUs idle on average: the room a planner has to save.
A criterion whose reference was not reached (the search's bound) is not judged ("-").

A shortfall against the target is also given in standard errors of the attainment a planner
running exactly at the target would show over the requests scored, sqrt(t (1 - t) / n): how far
the miss is from what chance alone makes of a window that size. Misses come in clumps, so the
real spread is wider than this binomial one: a shortfall of 1-2 SE does not tell a planner short
of its target from one on it.

The judgement is pure (`judge_cell`); reading the traces for burstiness is `burstiness`.
Usage: .venv/bin/python benchmarks/criteria.py benchmarks/results/NAME.json [more.json ...]
prints the verdicts and writes NAME-criteria.json beside each file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ORACLE_BOUND = 1.15
FIXED_BOUND_BURSTY = 0.85
BURSTY_PEAK_TO_MEAN = 1.5
TARGET_SLACK = 0.005
REACH_WITHIN = 2.0
DEFAULT_TARGET = 0.99
TRACES = Path(__file__).resolve().parents[1] / "traces"


@dataclass(frozen=True)
class CellVerdict:
    set: str
    trace: str
    startup_s: float
    bursty: bool
    need_peak_to_mean: float
    attainment: float
    gpu_hours: float
    vs_oracle: float | None     # criterion 1's ratio (None: the oracle did not reach it)
    below_oracle_bound: bool | None
    vs_fixed: float | None      # criterion 2's ratio
    below_fixed: bool | None
    fixed_bound_met: bool | None  # <= 0.85x; None on a window that is not bursty
    dominated_by: tuple[str, ...]
    target: float
    target_applies: bool        # criterion 4: a reference reaches the target within 2x
    target_met: bool | None     # None where exempt
    requests: int | None = None  # requests the subject was scored on (feasible)
    shortfall_se: float | None = None  # (target - attainment) in binomial standard errors at the target


def _reached_within(ref: dict | None, bound: float) -> bool:
    return bool(ref) and bool(ref.get("reached")) and float(ref.get("headroom", float("inf"))) <= bound


def judge_cell(entry: dict, need_peak_to_mean: float, target: float = DEFAULT_TARGET) -> CellVerdict:
    """One cell's verdicts from its `references` entry in a benchmarks/replay.py results file.
    The high references (`oracle_high`, `fixed_high`) must be sized for `target`."""
    bursty = need_peak_to_mean >= BURSTY_PEAK_TO_MEAN
    vs_o, vs_f = entry.get("predictive_vs_oracle_same"), entry.get("predictive_vs_fixed_same")
    applies = (_reached_within(entry.get("oracle_high"), REACH_WITHIN)
               or _reached_within(entry.get("fixed_high"), REACH_WITHIN))
    att = float(entry["predictive_attainment"])
    n = entry.get("predictive_requests")
    se = math.sqrt(target * (1 - target) / n) if n else None
    return CellVerdict(
        set=entry.get("set", ""), trace=entry["trace"], startup_s=float(entry["startup_s"]), bursty=bursty,
        need_peak_to_mean=need_peak_to_mean, attainment=att, gpu_hours=float(entry["predictive_gpu_hours"]),
        vs_oracle=vs_o, below_oracle_bound=None if vs_o is None else vs_o <= ORACLE_BOUND,
        vs_fixed=vs_f, below_fixed=None if vs_f is None else vs_f < 1.0,
        fixed_bound_met=None if vs_f is None or not bursty else vs_f <= FIXED_BOUND_BURSTY,
        dominated_by=tuple(entry.get("dominated_by", ())), target=target, target_applies=applies,
        target_met=(att >= target - TARGET_SLACK) if applies else None,
        requests=int(n) if n else None, shortfall_se=None if se is None else (target - att) / se)


def peak_to_mean(gpus: list[int]) -> float:
    """Peak over mean of a need series; 1.0 for an empty or idle one."""
    g = np.asarray(gpus, float)
    return float(g.max() / g.mean()) if g.size and g.mean() > 0 else 1.0


def burstiness(window: tuple[str, float, float, float], ttft_ms: float = 500.0, itl_ms: float = 50.0,
               profile: str | None = None) -> float:
    """The oracle's need peak-to-mean over a benchmark window's scored span (reads its trace), by
    `profile` (a file; None or "bundled": the bundled one), the one the run was given."""
    from dynamo_scaling.traces import read_trace, scale_rate, window as cut
    from scaler.profile import PerformanceProfile, bundled_profile, wants_bundled
    from scaler.replay.needs import window_needs

    fname, a, b, rate = window
    reqs = scale_rate(cut(read_trace(TRACES / fname), a, b), rate, seed=1)
    sized = bundled_profile() if profile is None or wants_bundled(profile) else PerformanceProfile.load(profile)
    return peak_to_mean([n.prefill + n.decode for n in window_needs(reqs, sized, ttft_ms, itl_ms)])


def label(window: tuple[str, float, float, float]) -> str:
    """The trace label of a benchmark window, as benchmarks/replay.py writes it in its results."""
    fname, a, b, rate = window
    return f"{Path(fname).name}[{a:.0f}-{b:.0f}s] x{rate:g}"


def judge(results: dict, peak_to_mean_of: dict[str, float] | None = None) -> list[CellVerdict]:
    """Every cell of a results file. `peak_to_mean_of` (trace label -> need peak/mean) skips
    reading the traces."""
    known = dict(peak_to_mean_of or {})
    target = float(results.get("attainment_target", DEFAULT_TARGET))
    out = []
    for set_name, data in results["sets"].items():
        for w in data.get("windows", []):
            if label(w) not in known:
                known[label(w)] = burstiness(tuple(w), results.get("ttft_ms", 500.0), results.get("itl_ms", 50.0),
                                             results.get("profile"))
        subject = results.get("subject", "predictive")
        scored = {(r["trace"], float(r["startup_s"])): r.get("feasible_requests")
                  for r in data.get("policies", []) if r.get("planner") == subject}
        for entry in data.get("references", []):
            if "oracle_same" not in entry:
                continue  # run with --no-references: nothing to judge against
            n = scored.get((entry["trace"], float(entry["startup_s"])))
            extra = {"predictive_requests": n} if n and "predictive_requests" not in entry else {}
            out.append(judge_cell({"set": set_name, **entry, **extra}, known[entry["trace"]], target))
    return out


def _mark(v: bool | None) -> str:
    return "-" if v is None else ("met" if v else "MISSED")


def table(verdicts: list[CellVerdict]) -> list[str]:
    ratio = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    lines = ["| set | trace | start-up s | bursty (need peak/mean) | att. / GPU-h | 1. vs oracle <= 1.15 | "
             "2. vs fixed < 1 (<= 0.85 bursty) | 3. dominated by | 4. att. >= target - 0.005 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        second = f"{ratio(v.vs_fixed)} {_mark(v.below_fixed)}"
        if v.fixed_bound_met is not None:
            second += f"; <= 0.85x {_mark(v.fixed_bound_met)}"
        fourth = _mark(v.target_met) if v.target_applies else "exempt"
        if v.target_applies and v.shortfall_se is not None and v.shortfall_se > 0:
            fourth += (f" ({v.target - v.attainment:.3f} short, {v.shortfall_se:.1f} SE over "
                       f"{v.requests:,} requests)")
        lines.append(f"| {v.set} | {v.trace} | {v.startup_s:.0f} | {'yes' if v.bursty else 'no'} "
                     f"({v.need_peak_to_mean:.2f}) | {v.attainment:.3f} / {v.gpu_hours:.2f} | "
                     f"{ratio(v.vs_oracle)} {_mark(v.below_oracle_bound)} | {second} | "
                     f"{', '.join(v.dominated_by) or 'none'} | {fourth} (target {v.target:g}) |")
    return lines


def summary(verdicts: list[CellVerdict]) -> list[str]:
    """How many judged cells meet each criterion, per set."""
    out = []
    for s in dict.fromkeys(v.set for v in verdicts):
        cells = [v for v in verdicts if v.set == s]

        def count(name: str, values: list[bool | None]) -> str:
            judged = [x for x in values if x is not None]
            return f"{name} {sum(judged)} of {len(judged)}"

        out.append(f"{s}: " + "; ".join([
            count("1.", [v.below_oracle_bound for v in cells]),
            count("2. below fixed", [v.below_fixed for v in cells]),
            count("2. <= 0.85x on bursty", [v.fixed_bound_met for v in cells]),
            count("3. not dominated", [not v.dominated_by for v in cells]),
            count("4.", [v.target_met for v in cells])]) + f" (of {len(cells)} cells)")
    return out


def growth(verdicts: list[CellVerdict]) -> list[dict]:
    """Cells played at more than one target: attainment and GPU-hours per target, and whether
    GPU-hours rise strictly with the target."""
    cells: dict[tuple[str, str, float], dict[float, CellVerdict]] = {}
    for v in verdicts:
        cells.setdefault((v.set, v.trace, v.startup_s), {})[v.target] = v
    out = []
    for (set_name, trace, startup), by_target in cells.items():
        if len(by_target) < 2:
            continue
        targets = sorted(by_target)
        gph = [by_target[t].gpu_hours for t in targets]
        out.append({"set": set_name, "trace": trace, "startup_s": startup, "targets": targets,
                    "attainment": [by_target[t].attainment for t in targets], "gpu_hours": gph,
                    "grows": all(b > a for a, b in zip(gph, gph[1:]))})
    return out


def growth_table(rows: list[dict]) -> list[str]:
    lines = ["| set | trace | start-up s | targets | att. | GPU-h | GPU-h grow with the target |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['trace']} | {r['startup_s']:.0f} | "
                     f"{' / '.join(f'{t:g}' for t in r['targets'])} | "
                     f"{' / '.join(f'{a:.3f}' for a in r['attainment'])} | "
                     f"{' / '.join(f'{g:.2f}' for g in r['gpu_hours'])} | {_mark(r['grows'])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+", help="results JSON of benchmarks/replay.py")
    args = p.parse_args(argv)
    cache: dict[str, float] = {}
    every: list[CellVerdict] = []
    for path in args.results:
        try:
            text = path.read_text()
        except OSError as exc:
            print(f"{path}: cannot be read ({exc.strerror or exc})", file=sys.stderr)
            return 2
        try:
            results = json.loads(text)
            verdicts = judge(results, cache)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"{path}: not a results file of benchmarks/replay.py ({exc.__class__.__name__}: {exc})",
                  file=sys.stderr)
            return 2
        cache.update({v.trace: v.need_peak_to_mean for v in verdicts})
        every += verdicts
        print(f"## {path.name} (subject `{results.get('subject', 'predictive')}`)\n")
        print("\n".join(table(verdicts) + [""] + summary(verdicts)) + "\n")
        out = path.with_name(f"{path.stem}-criteria.json")
        out.write_text(json.dumps([asdict(v) for v in verdicts], indent=2))
        print(f"written to {out}\n")
    rows = growth(every)
    if rows:
        print("## GPU-hours against the attainment target\n")
        print("\n".join(growth_table(rows)) + "\n")
        print(f"grow with the target: {sum(r['grows'] for r in rows)} of {len(rows)} cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
