"""Bounds, the shared GPU budget and scale-down hysteresis. Pure.

`constrain` is the planner's last stage: round the fractional need, bound it, hold back
scale-downs, then fit the GPU budget.

Budget rule: when the pools together need more GPUs than the budget, each keeps its minimum,
then the rest is shared in proportion to need, rounding toward the pool that is furthest
behind its need (so a starved pool is served first).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from scaler.planner.config import PlannerConfig
from scaler.planner.sizing import ceil_replicas


def clamp(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, n))


def fit_budget(prefill: int, decode: int, budget: int | None, gpus_prefill: int = 1, gpus_decode: int = 1,
               min_prefill: int = 0, min_decode: int = 0) -> tuple[int, int, bool]:
    if budget is None or prefill * gpus_prefill + decode * gpus_decode <= budget:
        return prefill, decode, False
    p, d = min_prefill, min_decode
    left = budget - p * gpus_prefill - d * gpus_decode
    while left > 0:
        # serve the pool with the larger unmet fraction of its need
        gap_p = (prefill - p) / max(prefill, 1) if p < prefill and gpus_prefill <= left else -1
        gap_d = (decode - d) / max(decode, 1) if d < decode and gpus_decode <= left else -1
        if gap_p < 0 and gap_d < 0:
            break
        if gap_p >= gap_d:
            p, left = p + 1, left - gpus_prefill
        else:
            d, left = d + 1, left - gpus_decode
    return p, d, True


@dataclass
class DownHold:
    """Remove capacity only when the need of the whole last `hold_s` is below what runs, and
    then at most a `step` fraction per decision: scale down late, never all at once. Where a
    `lasting` need is given, that is what the period remembers: the rest of today's need (workers
    that drain a queue) is met while asked for and not held after."""

    hold_s: float
    step: float
    needs: deque[tuple[float, int]] = field(default_factory=deque)
    first_seen: float | None = None

    def apply(self, now: float, current: int, need: int, lasting: int | None = None) -> int:
        if self.first_seen is None:
            self.first_seen = now
        self.needs.append((now, need if lasting is None else min(lasting, need)))
        while self.needs and self.needs[0][0] < now - self.hold_s:
            self.needs.popleft()
        if need >= current:
            return need
        if now - self.first_seen < self.hold_s:
            return current  # not yet seen a whole hold period
        ceiling = max(need, max(n for _, n in self.needs))
        if ceiling >= current:
            return current
        return max(ceiling, current - max(1, math.floor(current * self.step)))


def constrain(now: float, prefill_need: float, decode_need: float, prefill_current: int, decode_current: int,
              config: PlannerConfig, gpus_prefill: int, gpus_decode: int, prefill_hold: DownHold,
              decode_hold: DownHold, lasting: tuple[float, float] | None = None) -> tuple[int, int, bool]:
    """Replicas per pool from the fractional need, and whether the GPU budget cut them. The
    holds see the bounded need, so they never remove capacity that the queues still need;
    `lasting` (prefill, decode), where given, is the part of the need they remember."""
    c = config

    def prefill(need: float) -> int:
        return clamp(ceil_replicas(need), c.min_prefill, c.max_prefill)

    def decode(need: float) -> int:
        return clamp(ceil_replicas(need), c.min_decode, c.max_decode)

    keep_pre, keep_dec = (None, None) if lasting is None else (prefill(lasting[0]), decode(lasting[1]))
    pre = prefill_hold.apply(now, prefill_current, prefill(prefill_need), keep_pre)
    dec = decode_hold.apply(now, decode_current, decode(decode_need), keep_dec)
    return fit_budget(pre, dec, c.gpu_budget, gpus_prefill, gpus_decode, c.min_prefill, c.min_decode)
