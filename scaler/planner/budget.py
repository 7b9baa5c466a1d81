"""Capacity headroom from the SLA error budget: a closed loop on attainment. Pure.

The budget is the share of requests allowed to miss, 1 - attainment_target. Misses and measured
requests are smoothed over `window_s` (exponential decay), and their ratio to the budget is the
burn rate: 1 spends the budget exactly, 5 five times too fast.

- Burn above `raise_above`: the headroom rises by `gain * ln(burn)` (`max_step` of it at most).
  Then the counts start afresh, and only from `settle_s` later (the start-up delay plus one
  decision): capacity asked for takes that long to serve, so requests served before then say
  nothing about the new headroom (counting them is what makes such loops overshoot).
- Burn below `lower_below` for the whole of `hold_s` since the last raise: it falls by
  `lower_per_min` per minute, slowly, so a quiet spell does not undo a raise the next burst needs,
  and never below a level that was just shown too low: a raise from h leaves a floor half a step
  above h, forgotten `floor_memory_s` after the last raise so that a lasting change of traffic can
  still lower it (at most one such probe per memory span). Without that memory the loop would
  lower into the level that missed, raise again, and cycle.
- Between the two thresholds, or with fewer than `min_requests` measured (by default enough to
  expect 3 misses at the allowed rate: 300 for a 0.99 target): it stays.
- Always within [lo, hi].
- With `window_cap`, the misses of one update count at most `window_cap` times what the budget
  allows its requests (one miss at least): a clump of misses in one window then burns as a few
  windows' worth, and only misses that keep coming window after window raise the headroom.
  Misses a larger fleet prevents (a model of need that is short) keep coming; misses of a clump
  shorter than a start-up come and go, and more headroom on the forecast would not have caught
  them in time.
Fast up, slow down, a dead band and a hold: the loop cannot oscillate around the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ErrorBudgetLoop:
    target: float = 0.99
    lo: float = 1.0
    hi: float = 2.0
    window_s: float = 120.0
    raise_above: float = 1.5
    lower_below: float = 0.5
    gain: float = 0.3
    max_step: float = 0.5
    lower_per_min: float = 0.2
    hold_s: float = 120.0
    floor_memory_s: float = 3600.0
    min_requests: float | None = None  # default: enough for 3 misses at the allowed rate
    window_cap: float | None = None  # most burn one update's misses count for (None: all count)
    value: float = 1.0
    measured: float = 0.0
    missed: float = 0.0
    excluded: float = 0.0
    last_now: float | None = None
    last_raise: float | None = None
    counting_from: float = -math.inf
    last_burn: float | None = None  # the latest burn measured (what the last change was based on)
    floor: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.target < 1:
            raise ValueError("target must be in (0, 1)")
        if not 0 < self.lo <= self.hi:
            raise ValueError("need 0 < lo <= hi")
        if self.window_cap is not None and self.window_cap <= self.raise_above:
            raise ValueError(f"window_cap must be above raise_above ({self.raise_above:g}), "
                             "or no burn could raise the headroom")
        self.value = min(self.hi, max(self.lo, self.value))
        if self.min_requests is None:
            # fewer requests cannot tell a burn of 1.5 from chance
            self.min_requests = max(20.0, 3.0 / self.budget)

    @property
    def budget(self) -> float:
        return 1.0 - self.target

    @property
    def burn(self) -> float | None:
        """Smoothed miss share over the budget; None while too few requests were measured."""
        counted = self.measured - self.excluded
        if counted < (self.min_requests or 0.0) or counted <= 0:
            return None
        return max(0.0, self.missed - self.excluded) / counted / self.budget

    def update(self, now: float, measured: int, missed: int, settle_s: float, excluded: int = 0) -> float:
        """`excluded`: requests no capacity can serve in time (counted among measured and, when
        they miss, among missed too); left out of the budget, up to the window's misses (as live
        counts them, scaler.planner.attainment)."""
        dt = 0.0 if self.last_now is None else max(0.0, now - self.last_now)
        self.last_now = now
        if self.last_raise is not None and now - self.last_raise > self.floor_memory_s:
            self.floor = 0.0
        if now < self.counting_from:  # the last raise is not serving yet
            return self.value
        decay = math.exp(-dt / self.window_s) if self.window_s > 0 else 0.0
        measured = max(0, measured)
        missed = min(max(0, missed), measured)
        # beyond reach and met (from a prefix cache) is no miss to leave out: only as many as missed,
        # window by window, or those met would cancel misses of other windows in the smoothed counts
        excluded = min(max(0, excluded), missed)
        if self.window_cap is not None:
            # misses beyond reach are counted among the missed; the cap is on the others
            # and never below one miss: at light load a lone miss is not a clump
            allowed = max(1.0, self.window_cap * self.budget * (measured - excluded))
            missed -= max(0.0, missed - excluded - allowed)
        self.measured = self.measured * decay + measured
        self.missed = self.missed * decay + missed
        self.excluded = self.excluded * decay + excluded
        burn = self.burn
        if burn is None:
            return self.value
        self.last_burn = burn
        if burn > self.raise_above:
            if self.value < self.hi and (self.last_raise is None or now - self.last_raise >= settle_s):
                step = min(self.max_step, self.gain * math.log(burn))
                self.floor = max(self.floor, min(self.hi, self.value * (1.0 + step / 2)))
                self.value = min(self.hi, self.value * (1.0 + step))
                self.last_raise = now
                # misses counted so far were made before the raise: the next raise needs new ones
                self.measured = self.missed = self.excluded = 0.0
                self.counting_from = now + settle_s
        elif burn < self.lower_below and (self.last_raise is None or now - self.last_raise >= self.hold_s):
            self.value = max(self.lo, min(self.value, self.floor), self.value - self.lower_per_min * dt / 60.0)
        return self.value
