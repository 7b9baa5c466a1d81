"""Two planners compared cell by cell on results of benchmarks/traffic_shapes.py or
benchmarks/replay.py, by a rule fixed in advance (docs/planner.md, "Deciding it on shapes neither set
holds").

A cell is one shape (or one window of a frozen set) at one start-up and target. "Meets" is
attainment >= target - 0.005.
- both meet: the subject wins if it spends <= 0.97x the baseline's GPU-hours, loses if >= 1.03x;
- only one meets: that one wins;
- neither meets: the higher attainment on no more GPU-hours wins; otherwise a tie.
The subject is preferred when it has at least twice as many wins as losses.

Usage: .venv/bin/python benchmarks/pairwise.py --subject predictive-trend30 --baseline predictive \
           benchmarks/results/th-shapes-*.json [--name NAME]
prints each cell and the tally, and writes benchmarks/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLACK = 0.005
CHEAPER, DEARER = 0.97, 1.03


def verdict(subject: tuple[float, float], baseline: tuple[float, float], target: float) -> str:
    """'win', 'loss' or 'tie' for the subject; each side is (attainment, GPU-hours)."""
    (sa, sg), (ba, bg) = subject, baseline
    s_meets, b_meets = sa >= target - SLACK, ba >= target - SLACK
    if s_meets and b_meets:
        if sg <= CHEAPER * bg:
            return "win"
        return "loss" if sg >= DEARER * bg else "tie"
    if s_meets != b_meets:
        return "win" if s_meets else "loss"
    if sa > ba and sg <= bg:
        return "win"
    if ba > sa and bg <= sg:
        return "loss"
    return "tie"


def _as_shape_runs(run: dict) -> list[dict]:
    """A results file of benchmarks/replay.py (sets of windows, every start-up in one file) as runs of
    benchmarks/traffic_shapes.py (one start-up each, a window being a shape)."""
    if "sets" not in run:
        return [run]
    by_startup: dict[float, list[dict]] = {}
    for set_name, played in run["sets"].items():
        for r in played["policies"]:
            by_startup.setdefault(float(r["startup_s"]), []).append(
                {**r, "shape": f"{set_name}: {r['trace']}", "policy": r["planner"]})
    return [{"startup_s": s, "target": run["attainment_target"], "rows": rows} for s, rows in by_startup.items()]


def compare(runs: list[dict], subject: str, baseline: str) -> dict:
    cells = []
    for run in (r for given in runs for r in _as_shape_runs(given)):
        target = float(run["target"])
        by = {(r["shape"], r["policy"]): r for r in run["rows"]}
        for shape in sorted({r["shape"] for r in run["rows"]}):
            s, b = by.get((shape, subject)), by.get((shape, baseline))
            if s is None or b is None:
                raise ValueError(f"{shape} at start-up {run['startup_s']}: {subject} or {baseline} not played")
            cells.append({"shape": shape, "startup_s": run["startup_s"], "target": target,
                          "subject": [s["feasible_attainment"], s["gpu_hours"]],
                          "baseline": [b["feasible_attainment"], b["gpu_hours"]],
                          "verdict": verdict((s["feasible_attainment"], s["gpu_hours"]),
                                             (b["feasible_attainment"], b["gpu_hours"]), target)})
    tally = {v: sum(1 for c in cells if c["verdict"] == v) for v in ("win", "loss", "tie")}
    return {"subject": subject, "baseline": baseline, "cells": cells, "tally": tally,
            "subject_preferred": tally["win"] >= 2 * tally["loss"] and tally["win"] > 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", type=Path, help="results files of benchmarks/traffic_shapes.py or benchmarks/replay.py")
    p.add_argument("--subject", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--name", default="pairwise", help="results file benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    try:
        runs = [json.loads(f.read_text()) for f in args.results]
        out = compare(runs, args.subject, args.baseline)
    except (OSError, ValueError, KeyError) as exc:
        p.error(str(exc))
    print(f"| shape | start-up s | target | {args.baseline} | {args.subject} | verdict |")
    print("|---|---|---|---|---|---|")
    for c in out["cells"]:
        print(f"| {c['shape']} | {c['startup_s']:.0f} | {c['target']} | {c['baseline'][0]:.3f} / "
              f"{c['baseline'][1]:.2f} | {c['subject'][0]:.3f} / {c['subject'][1]:.2f} | {c['verdict']} |")
    t = out["tally"]
    print(f"\n{args.subject} against {args.baseline}: {t['win']} wins, {t['loss']} losses, {t['tie']} ties; "
          f"{'preferred' if out['subject_preferred'] else 'not preferred'} (needs wins >= 2x losses)")
    path = REPO / "benchmarks" / "results" / f"{args.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
