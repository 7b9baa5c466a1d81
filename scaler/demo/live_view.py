"""A terminal view that replays the engine's timeline at a chosen speed."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from scaler.replay.engine import ReplayRun, TimelinePoint


def _bar(n: int, scale: int = 40) -> str:
    return "█" * min(n, scale) + ("+" if n > scale else "")


def _table(now_s: float, points: dict[str, TimelinePoint], ttft_target: float) -> Table:
    t = Table(title=f"simulated time {int(now_s // 60):02d}:{int(now_s % 60):02d}", expand=False)
    for col in ("planner", "load req/s", "forecast", "prefill", "decode", "GPUs", "TTFT ms", "ITL ms"):
        t.add_column(col)
    for name, p in points.items():
        ttft = p.avg_ttft_ms
        style = "red" if ttft is not None and ttft > ttft_target else "green"
        t.add_row(name, f"{p.request_rate:.1f}", f"{p.forecast_rate:.1f}" if p.forecast_rate else "-",
                  f"{_bar(sum(p.prefill))} {p.prefill[0]}+{p.prefill[1]}s", f"{_bar(sum(p.decode))} {p.decode[0]}+{p.decode[1]}s",
                  str(sum(p.prefill) + sum(p.decode)),
                  f"[{style}]{ttft:.0f}[/{style}]" if ttft is not None else "-",
                  f"{p.avg_itl_ms:.1f}" if p.avg_itl_ms is not None else "-")
    return t


def play(runs: dict[str, ReplayRun], speed: float, console: Console | None = None) -> None:
    """Show every run's timeline side by side; `speed` simulated seconds per wall second."""
    console = console or Console()
    first = next(iter(runs.values()))
    end = max(p.t_s for r in runs.values() for p in r.timeline)
    step = max(1.0, speed / 4)  # about four refreshes a second
    cursors = {n: 0 for n in runs}
    now = 0.0
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while now <= end:
            shown: dict[str, TimelinePoint] = {}
            for name, run in runs.items():
                tl = run.timeline
                while cursors[name] + 1 < len(tl) and tl[cursors[name] + 1].t_s <= now:
                    cursors[name] += 1
                shown[name] = tl[cursors[name]]
            live.update(_table(now, shown, first.config.ttft_ms))
            time.sleep(step / speed)
            now += step
