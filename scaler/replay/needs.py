"""What a trace needs, window by window, according to a profile (for `static`, `oracle` and
`ceiling`, which are allowed to know the trace)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaler.planner.sizing import Load, ceil_replicas, decode_replicas, prefill_replicas
from scaler.profile import PerformanceProfile
from scaler.replay.traces import Request


@dataclass(frozen=True)
class WindowNeed:
    start_s: float
    rate: float
    prefill: int
    decode: int


def window_needs(reqs: list[Request], profile: PerformanceProfile, ttft_ms: float, itl_ms: float,
                 window_s: float = 30.0) -> list[WindowNeed]:
    if not reqs:
        return []
    ts = np.array([r.timestamp_ms / 1000.0 for r in reqs])
    isl = np.array([r.input_length for r in reqs], float)
    osl = np.array([r.output_length for r in reqs], float)
    out = []
    for k in range(int(ts.max() // window_s) + 1):
        m = (ts >= k * window_s) & (ts < (k + 1) * window_s)
        n = int(m.sum())
        if n == 0:
            out.append(WindowNeed(k * window_s, 0.0, 0, 0))
            continue
        # the busiest tenth of the window sets the rate: bursts inside a window are real load
        sub = np.histogram(ts[m], bins=10, range=(k * window_s, (k + 1) * window_s))[0]
        load = Load(max(n / window_s, sub.max() / (window_s / 10) * 0.75), float(isl[m].mean()), float(osl[m].mean()))
        out.append(WindowNeed(k * window_s, load.rate, ceil_replicas(prefill_replicas(load, profile, ttft_ms)),
                              ceil_replicas(decode_replicas(load, profile, itl_ms))))
    return out


def peak_need(needs: list[WindowNeed]) -> tuple[int, int]:
    return (max((n.prefill for n in needs), default=1), max((n.decode for n in needs), default=1))
