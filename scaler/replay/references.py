"""References sized for an attainment: what perfect foresight (the oracle) or a fixed fleet
needs in GPU-hours to reach a given feasible attainment on a setting.

The plain oracle starts what the profile says each window needs; on bursty traces that reaches
far less than a 0.99 attainment, so "GPU-hours vs. the oracle" alone mixes cost with quality.
Scaling the oracle's (or the peak-sized fixed fleet's) capacity by a headroom factor and
searching the smallest factor that reaches a target gives the cost of that attainment with
foresight, to compare a planner with at equal quality."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from scaler.planner.sizing import ceil_replicas
from scaler.policy import Policy
from scaler.replay import baselines
from scaler.replay.engine import run
from scaler.replay.scoring import score
from scaler.replay.needs import peak_need
from scaler.replay.runner import Setting, initial_fleet


@dataclass(frozen=True)
class Reference:
    kind: str               # "oracle" or "fixed"
    target: float           # feasible attainment asked for
    headroom: float | None  # smallest factor found that reaches it (None: not reached)
    row: dict               # the score of the run at that factor (or at the largest factor tried)
    runs: tuple[dict, ...] = ()  # every run of the search, by factor: points of the kind's attainment/cost curve

    @property
    def reached(self) -> bool:
        return self.headroom is not None


def _policy(kind: str, setting: Setting, h: float) -> Policy:
    ctx = setting.context()
    if kind == "oracle":
        return baselines.Oracle(ctx.needs(), ctx.startup_s, headroom=h, name=f"oracle x{h:.2f}")
    p, d = peak_need(ctx.needs())
    return baselines.Static(max(1, ceil_replicas(p * h)), max(1, ceil_replicas(d * h)), name=f"fixed x{h:.2f}")


def _run(kind: str, setting: Setting, h: float, feasible: Counter) -> dict:
    policy = _policy(kind, setting, h)
    result = run(setting.requests, policy, setting.engine(initial_fleet(setting, policy)))
    row = score(result, setting.trace_name, feasible, setting.warmup_s)
    row["headroom"] = h
    return row


def sized_for(kind: str, setting: Setting, target: float, feasible: Counter, max_headroom: float = 6.0,
              min_headroom: float = 0.25, resolution: float = 0.05, progress: Callable[[str], None] | None = None) -> Reference:
    """The smallest headroom (to `resolution`, relative) at which `kind` reaches `target`.

    Attainment is not strictly monotone in capacity (routing and batching shift), so the search
    brackets first with doublings and then bisects; the answer is the cheapest run seen that
    reaches the target."""
    say = progress or (lambda m: None)
    tried: dict[float, dict] = {}

    def attempt(h: float) -> dict:
        h = round(h, 3)
        if h not in tried:
            tried[h] = _run(kind, setting, h, feasible)
            say(f"{kind} x{h:.2f}: attainment {tried[h]['feasible_attainment']:.3f}, "
                f"{tried[h]['gpu_hours']:.2f} GPU-h")
        return tried[h]

    def good(h: float) -> bool:
        return attempt(h)["feasible_attainment"] >= target

    lo: float | None
    if good(1.0):  # bracket downwards: less than the profile's need may do
        lo, hi = 0.5, 1.0
        while good(lo):
            hi, lo = lo, lo / 2
            if lo < min_headroom:
                lo = None
                break
    else:  # bracket upwards
        lo, hi = 1.0, min(2.0, max_headroom)
        while not good(hi):
            if hi >= max_headroom:
                return Reference(kind, target, None, tried[round(hi, 3)], _by_factor(tried))
            lo, hi = hi, min(hi * 2, max_headroom)
    if lo is not None:
        while hi / lo - 1 > resolution:
            mid = math.sqrt(lo * hi)
            if good(mid):
                hi = mid
            else:
                lo = mid
    best = min((r for r in tried.values() if r["feasible_attainment"] >= target), key=lambda r: r["gpu_hours"])
    return Reference(kind, target, best["headroom"], best, _by_factor(tried))


def _by_factor(tried: dict[float, dict]) -> tuple[dict, ...]:
    return tuple(tried[h] for h in sorted(tried))
