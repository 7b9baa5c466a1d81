"""A timeline PNG of replayed planners: arrivals and forecasts, prefill and decode workers (billed
and active), and mean TTFT against its target."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scaler.replay.engine import ReplayRun  # noqa: E402


def plot(runs: dict[str, ReplayRun], out: Path, title: str) -> Path:
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    first = next(iter(runs.values()))
    t = [p.t_s / 60 for p in first.timeline]
    axes[0].plot(t, [p.request_rate for p in first.timeline], color="0.4", lw=0.8, label="arrivals")
    for name, run in runs.items():
        fr = [p.forecast_rate for p in run.timeline]
        if any(f is not None for f in fr):
            axes[0].plot([p.t_s / 60 for p in run.timeline], [f or 0 for f in fr], lw=1.2, label=f"{name} forecast")
    axes[0].set_ylabel("requests/s")
    for ax, idx, label in ((axes[1], "prefill", "prefill workers"), (axes[2], "decode", "decode workers")):
        for name, run in runs.items():
            ts = [p.t_s / 60 for p in run.timeline]
            ax.step(ts, [sum(getattr(p, idx)) for p in run.timeline], where="post", label=f"{name} (billed)")
            ax.step(ts, [getattr(p, idx)[0] for p in run.timeline], where="post", ls=":", lw=0.8,
                    label=f"{name} (active)")
        ax.set_ylabel(label)
    for name, run in runs.items():
        axes[3].plot([p.t_s / 60 for p in run.timeline], [p.avg_ttft_ms or float("nan") for p in run.timeline],
                     lw=0.8, label=name)
    axes[3].axhline(first.config.ttft_ms, color="red", ls="--", lw=0.8, label="TTFT target")
    axes[3].set_yscale("log")
    axes[3].set_ylabel("mean TTFT (ms)")
    axes[3].set_xlabel("minutes")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
