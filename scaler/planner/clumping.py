"""How clumped arrivals are, read from request counts alone (`arrival_clumping: measured` or
`above_fixed`).

The tail model's `arrival_ca2` says how far arrivals within a decision window are from Poisson.
Live, the planner sees counts per window, not arrival gaps, so the clumping is estimated from
counts: for two adjacent, disjoint windows of equal length with counts a and b, (b - a)^2 / (a + b)
is about chi-squared with one degree of freedom when arrivals are Poisson at a steady rate, and
grows with the index of dispersion of the counts when they clump. Its median over recent pairs,
over the Poisson median (0.455), reads about 1 for Poisson arrivals. A median rather than a mean
because a step or an on/off edge is one pair out of many: a change of rate must not read as
clumping (a mean would take one 3 -> 30 req/s edge for clumps of 15).

Windows that overlap (live, the rate is read over twice the decision interval) share requests, which
would read too smooth; each window is paired with the latest earlier one of the same length that
ends by the time it starts, so only disjoint windows are compared. A short gap between the two
(live, decisions come every interval plus the time a decision takes) leaves requests uncounted
but both counts with the same mean, so it is allowed up to half a window.

Sources: the index of dispersion of counts (Cox and Lewis, "The Statistical Analysis of Series of
Events", 1966); docs/planner.md, "Clumping measured from counts, and a spare worker".
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

# median of chi-squared with one degree of freedom: (b - a)^2 / (a + b) for Poisson counts
POISSON_MEDIAN = 0.4549
PAIRS = 60       # recent pairs the median is taken over (five minutes of 5 s decisions)
MIN_PAIRS = 12   # fewer: not measured yet, the caller's default holds
_OVERLAP = 0.02  # share of a window two windows may overlap by and still count as disjoint
_GAP = 0.5       # share of a window the gap between two paired windows may last
_LENGTH = 0.05   # relative difference of lengths still taken as equal


@dataclass
class ClumpingEstimate:
    """Feed each decision window (`observe`); `value(lo, hi)` is the measured clumping, clamped,
    or `prior` (default `hi`) until enough pairs were seen."""

    pairs: int = PAIRS
    _windows: deque = field(default_factory=lambda: deque(maxlen=64))  # (end_s, duration_s, count)
    _ratios: deque = field(init=False)

    def __post_init__(self) -> None:
        self._ratios = deque(maxlen=self.pairs)

    def observe(self, end_s: float, duration_s: float, count: float) -> None:
        if duration_s <= 0 or count < 0:
            return
        start = end_s - duration_s
        for prev_end, prev_duration, prev_count in reversed(self._windows):
            if prev_end <= start + _OVERLAP * duration_s:
                # the ratio assumes both counts have the same mean: equal lengths, close in time
                if start - prev_end <= _GAP * duration_s and abs(prev_duration - duration_s) <= _LENGTH * duration_s:
                    total = prev_count + count
                    if total > 0:
                        self._ratios.append((count - prev_count) ** 2 / total)
                break
        self._windows.append((end_s, duration_s, count))

    @property
    def measured(self) -> int:
        return len(self._ratios)

    def value(self, lo: float, hi: float, prior: float | None = None) -> float:
        if len(self._ratios) < MIN_PAIRS:
            return hi if prior is None else prior
        return min(hi, max(lo, statistics.median(self._ratios) / POISSON_MEDIAN))
