"""The attainment / GPU-hours frontier: every policy is a point (GPU-hours billed, feasible SLA
attainment), and the oracle (perfect foresight) and the fixed fleet are curves through their runs
at several capacity factors (scaler.replay.references). A policy above and left of a curve gets
more attainment for fewer GPU-hours than that reference; below and right, the reference wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# capacity factors for curves drawn without a sizing search (the CLI's --plot)
DEFAULT_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
CURVE_KINDS = {"oracle": "oracle (foresight) x capacity", "fixed": "fixed fleet x capacity"}
# the feasibility reference: a huge fleet far right of every policy; it would squash the picture
NOT_PLOTTED = ("ceiling",)


@dataclass(frozen=True)
class Point:
    label: str
    gpu_hours: float
    attainment: float


@dataclass(frozen=True)
class Curve:
    kind: str  # "oracle" or "fixed"
    points: tuple[Point, ...]  # by GPU-hours; each labelled with its capacity factor

    @property
    def label(self) -> str:
        return CURVE_KINDS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Frontier:
    title: str
    points: tuple[Point, ...]
    curves: tuple[Curve, ...]


def policy_points(rows: Iterable[dict]) -> tuple[Point, ...]:
    """One point per scored policy row (scaler.replay.scoring.score with feasibility)."""
    return tuple(Point(r["planner"], float(r["gpu_hours"]), float(r["feasible_attainment"]))
                 for r in rows if r["planner"] not in NOT_PLOTTED)


def curve(kind: str, runs: Iterable[dict]) -> Curve:
    """A reference's curve through its scored runs (rows with a `headroom`); a factor run twice
    (two sizing searches of one setting) counts once."""
    by_factor = {round(float(r["headroom"]), 3): r for r in runs}
    pts = sorted((Point(f"x{h:.2f}", float(r["gpu_hours"]), float(r["feasible_attainment"]))
                  for h, r in by_factor.items()), key=lambda p: (p.gpu_hours, p.attainment))
    return Curve(kind, tuple(pts))


def curve_runs(kind: str, setting, feasible: Counter, factors: Sequence[float] = DEFAULT_FACTORS) -> list[dict]:
    """Score `kind` ("oracle" or "fixed") at each capacity factor, as the sized references do."""
    # the references' own scored run at one factor (imported late: it pulls in the engine)
    from scaler.replay.references import _run

    return [_run(kind, setting, float(h), feasible) for h in factors]


def build(title: str, rows: Iterable[dict], reference_runs: dict[str, Iterable[dict]]) -> Frontier:
    return Frontier(title, policy_points(rows),
                    tuple(curve(kind, runs) for kind, runs in reference_runs.items()))


def plot(frontiers: Sequence[Frontier], out: Path, title: str = "") -> Path:
    """One panel per frontier (a grid when there are several), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(frontiers)
    if n == 0:
        raise ValueError("nothing to plot")
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.8 * rows), squeeze=False)
    names = sorted({p.label for f in frontiers for p in f.points})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    markers = "osD^vP*Xh<>"
    for ax, fr in zip(axes.flat, frontiers):
        for c, style in zip(fr.curves, ("-", "--", ":")):
            xs, ys = [p.gpu_hours for p in c.points], [p.attainment for p in c.points]
            ax.plot(xs, ys, style, color="0.35", lw=1.2, marker=".", ms=5, label=c.label)
            # name the ends and x1.00 only: sizing searches put many factors close together
            ends = {c.points[0], c.points[-1]} if c.points else set()
            for p in c.points:
                if p not in ends and p.label != "x1.00":
                    continue
                ax.annotate(p.label, (p.gpu_hours, p.attainment), fontsize=6, color="0.4",
                            xytext=(2, -8), textcoords="offset points")
        for p in fr.points:
            ax.scatter([p.gpu_hours], [p.attainment], s=55, color=colours[p.label],
                       marker=markers[names.index(p.label) % len(markers)], zorder=3, label=p.label,
                       edgecolors="black", linewidths=0.5)
        ax.set_title(fr.title, fontsize=9)
        ax.set_xlabel("GPU-hours")
        ax.set_ylabel("feasible SLA attainment")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
