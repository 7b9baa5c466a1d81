"""Burst headroom: the load to keep capacity for because it can rise faster than workers start. Pure.

A worker asked for now serves only after the start-up delay L, so the fleet follows load about L
late: what it cannot follow is how far load rises within L. From the recent history (one value per
decision: prompt tokens/s or requests/s), every sample gives its rise over the mean of the L
seconds before it. Each rise weighs by the load of its sample (a burst holds many requests, and
attainment counts requests) times a decay with its age (half-life `half_life_s`). The headroom is
the weighted `quantile` of the rises: all but 1 - quantile of the recent requests arrived on a rise
no larger. Kept on top of the mean load of the last L seconds, it holds capacity through the gaps
between bursts, and falls back as old bursts lose weight once bursts stop, instead of a flat
recent peak held for a fixed time.

`distribution` gives the recent history itself as a distribution over requests (bursts=mix): each
sample's load, weighted by the requests it carried and by age as above. The tail model of need
(scaler/planner/tail.py) then sizes the fleet for which the share of requests meeting the target,
over that whole distribution, reaches the attainment target: a fleet that would have served the
recent bursts, and that shrinks as they age once bursts stop.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BurstHeadroom:
    quantile: float = 0.9
    half_life_s: float = 150.0
    history_s: float = 1800.0
    samples: deque[tuple[float, float, float]] = field(default_factory=deque)  # (end time, value, duration)
    t: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile <= 1:
            raise ValueError("quantile must be in (0, 1]")
        if self.half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")

    def update(self, value: float, dt: float) -> None:
        if dt <= 0:
            return
        self.t += dt
        self.samples.append((self.t, max(0.0, value), dt))
        while self.samples and self.samples[0][0] < self.t - self.history_s:
            self.samples.popleft()

    def _prefix(self) -> tuple[list[float], list[float], list[float]]:
        """Sample end times, and the load integral and elapsed time up to each sample's end."""
        ends, area, span = [], [0.0], [0.0]
        for t_end, v, d in self.samples:
            ends.append(t_end)
            area.append(area[-1] + v * d)
            span.append(span[-1] + d)
        return ends, area, span

    @staticmethod
    def _mean_between(ends: list[float], area: list[float], span: list[float], samples: list, a: float,
                      b: float) -> float | None:
        """Time-weighted mean load over (a, b], b being a sample end (None: no history there)."""
        k_b = bisect.bisect_left(ends, b)          # sample k_b ends at b
        k_a = bisect.bisect_right(ends, a)         # first sample ending after a
        if k_a > k_b:
            return None
        tot_area, tot_span = area[k_b + 1] - area[k_a], span[k_b + 1] - span[k_a]
        t_end, v, d = samples[k_a]
        cut = max(0.0, min(d, a - (t_end - d)))    # the part of that sample before a
        tot_area, tot_span = tot_area - v * cut, tot_span - cut
        return tot_area / tot_span if tot_span > 1e-12 else None

    def rises(self, length_s: float) -> list[tuple[float, float, float]]:
        """(rise over the mean of the `length_s` before the sample, load, end time) of every
        sample with history before it. Prefix sums keep this linear in the history."""
        s = list(self.samples)
        ends, area, span = self._prefix()
        out = []
        for i, (t_end, v, d) in enumerate(s):
            if i == 0:
                continue
            start = t_end - d
            before = self._mean_between(ends, area, span, s, start - length_s, s[i - 1][0])
            if before is not None:
                out.append((max(0.0, v - before), v, t_end))
        return out

    def rise(self, length_s: float) -> float:
        """The load-weighted, decayed `quantile` of the rises within `length_s`."""
        weighted = sorted((r, v * 0.5 ** ((self.t - t_end) / self.half_life_s))
                          for r, v, t_end in self.rises(max(length_s, 1e-3)))
        total = sum(w for _, w in weighted)
        if total <= 0:
            return 0.0
        acc = 0.0
        for r, w in weighted:
            acc += w
            if acc >= self.quantile * total - 1e-12:
                return r
        return weighted[-1][0]

    def level(self, length_s: float) -> float:
        """The load to plan for: the mean of the last `length_s` plus the rise a burst may bring."""
        if not self.samples:
            return 0.0
        ends, area, span = self._prefix()
        s = list(self.samples)
        recent = self._mean_between(ends, area, span, s, self.t - length_s, ends[-1]) or 0.0
        return recent + self.rise(length_s)

    def distribution(self, bins: int = 32) -> tuple[np.ndarray, np.ndarray] | None:
        """The recent load as a distribution over requests: (load, weight) with each sample weighted
        by its load and duration (the requests it carried) and decayed with age, grouped into
        `bins` log-spaced classes (a bounded cost per decision); None without load."""
        if not self.samples:
            return None
        v = np.array([x for _, x, _ in self.samples])
        w = np.array([x * d * 0.5 ** ((self.t - t_end) / self.half_life_s) for t_end, x, d in self.samples])
        busy = (v > 0) & (w > 0)
        if not busy.any():
            return None
        v, w = v[busy], w[busy]
        edges = np.geomspace(v.min(), v.max() * (1 + 1e-9), bins + 1)
        k = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, bins - 1)
        tot = np.bincount(k, weights=w, minlength=bins)
        mass = np.bincount(k, weights=w * v, minlength=bins)
        keep = tot > 0
        return mass[keep] / tot[keep], tot[keep] / tot[keep].sum()

    def mean(self, length_s: float) -> float:
        """Mean load of the last `length_s` seconds."""
        if not self.samples:
            return 0.0
        ends, area, span = self._prefix()
        s = list(self.samples)
        m = self._mean_between(ends, area, span, s, self.t - length_s, ends[-1])
        return 0.0 if m is None or not math.isfinite(m) else m
