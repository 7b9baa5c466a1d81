"""The demo's report: the attainment / GPU-hours frontier with a fixed fleet sized to the
planner's attainment, and a markdown summary (the timeline comes from `scaler.replay.timeline`)."""

from __future__ import annotations

from pathlib import Path

from scaler.replay import frontier
from scaler.replay.references import Reference

FIXED = "fixed fleet, same attainment"


def fixed_row(ref: Reference, planner: str) -> dict:
    """The fixed fleet sized to `planner`'s attainment, as a results row."""
    return {**ref.row, "planner": FIXED, "sized_for": planner, "target_attainment": ref.target,
            "reached": ref.reached, "capacity_factor": ref.headroom}


def frontier_of(rows: list[dict], fixed: Reference, planner: str) -> frontier.Frontier:
    """The policies as points, the fixed fleet's sizing runs as its curve, and the sized fleet marked."""
    points = frontier.policy_points(rows)
    if fixed.reached:
        points += (frontier.Point(FIXED, float(fixed.row["gpu_hours"]), float(fixed.row["feasible_attainment"])),)
    return frontier.Frontier(f"{planner} against a fixed fleet sized to its attainment and Dynamo's planners",
                             points, (frontier.curve("fixed", fixed.runs),))


def _headline(rows: list[dict], planner: str) -> list[str]:
    by = {r["planner"]: r for r in rows}
    me, fixed = by.get(planner), by.get(FIXED)
    if me is None or fixed is None:
        return []
    out = [(f"**{planner}** reaches a feasible attainment of {me['feasible_attainment']:.3f} on "
            f"{me['gpu_hours']:.2f} GPU-hours. ")]
    if fixed["reached"]:
        ratio = me["gpu_hours"] / fixed["gpu_hours"] if fixed["gpu_hours"] > 0 else float("nan")
        out[0] += (f"A fixed fleet sized in hindsight to the same attainment (x{fixed['capacity_factor']:.2f} of the peak need, "
                   f"{fixed['max_gpus']} GPUs) needs {fixed['gpu_hours']:.2f} GPU-hours: {planner} uses "
                   f"{ratio:.2f}x of that ({'less' if ratio < 1 else 'more'} than the fixed fleet).")
    else:
        out[0] += (f"No fixed fleet up to x{fixed['capacity_factor'] or fixed['headroom']:.2f} of the peak need "
                   f"reached it (best: {fixed['feasible_attainment']:.3f} on {fixed['gpu_hours']:.2f} GPU-hours).")
    for name, r in by.items():
        if name.startswith("dynamo-"):
            kind = "Dynamo 1.6.1's own planner code" if name.startswith("dynamo-own-") else "re-implemented"
            out.append(f"- `{name}` ({kind}): {r['feasible_attainment']:.3f} on {r['gpu_hours']:.2f} GPU-hours.")
    return out + [""]


def markdown(rows: list[dict], png: Path, setting: dict, frontier_png: Path | None = None,
             planner: str = "predictive") -> str:
    lines = [
        "# dynamo-scaling demo",
        "",
        f"Trace `{setting['trace']}` x{setting['rate_scale']} arrival rate, worker start-up {setting['startup_s']:.0f} s, "
        f"SLA: TTFT <= {setting['ttft_ms']:.0f} ms and mean ITL <= {setting['itl_ms']:.0f} ms; the planner aims "
        f"for {setting['attainment_target']:g} of requests meeting both. "
        "Simulated by Dynamo's replay engine (ai-dynamo-runtime).",
        "",
        *_headline(rows, planner),
        "| planner | SLA attainment | feasible attainment | GPU-hours | peak GPUs | scale events | TTFT p50 / p99 (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['planner']} | {r['sla_attainment']:.3f} | {r.get('feasible_attainment', float('nan')):.3f} | "
            f"{r['gpu_hours']:.2f} | {r['max_gpus']} | {r['scale_events']} | "
            f"{r['ttft_p50_ms']:.0f} / {r['ttft_p99_ms']:.0f} |")
    lines += ["", "Feasible attainment counts only requests that meet the SLA on a very large fixed fleet "
              "(`ceiling`): the rest cannot meet it whatever the planner does."]
    if frontier_png is not None:
        lines += ["", ("Attainment against GPU-hours: each planner is a point; the curve is a fixed fleet at "
                       "several multiples of the peak need (its sizing search), the marked point the smallest that "
                       f"reaches {planner}'s attainment. Up and to the left is better."), "",
                  f"![frontier]({frontier_png.name})"]
    lines += ["", f"![timeline]({png.name})", ""]
    return "\n".join(lines)
