"""What a trace needs, window by window, according to a profile (for `static`, `oracle` and
`ceiling`, which are allowed to know the trace).

The model of need is the planner's (scaler/planner/tail.py), fed what only foresight knows: each
window's own prompt lengths (prefill), its requests' prompt and output lengths (decode KV), and
how its requests clump within it (the load of each `slice_s` slice relative to the window's mean,
the planner's decision interval). So the oracle tightens whenever the model improves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaler.planner import tail
from scaler.planner.sizing import Load, ceil_replicas, decode_replicas
from scaler.profile import PerformanceProfile
from dynamo_scaling.traces import Request

SLICE_S = 5.0
ATTAINMENT = 0.99


@dataclass(frozen=True)
class WindowNeed:
    start_s: float
    rate: float
    prefill: int
    decode: int


def window_needs(reqs: list[Request], profile: PerformanceProfile, ttft_ms: float, itl_ms: float,
                 window_s: float = 30.0, attainment: float = ATTAINMENT, slice_s: float = SLICE_S,
                 kv_headroom: float = 0.85) -> list[WindowNeed]:
    if not reqs:
        return []
    ts = np.array([r.timestamp_ms / 1000.0 for r in reqs])
    isl = np.array([r.input_length for r in reqs], float)
    osl = np.array([r.output_length for r in reqs], float)
    out = []
    for k in range(int(ts.max() // window_s) + 1):
        a, b = k * window_s, (k + 1) * window_s
        m = (ts >= a) & (ts < b)
        n = int(m.sum())
        if n == 0:
            out.append(WindowNeed(a, 0.0, 0, 0))
            continue
        rate = n / window_s
        mix = tail.PromptMix.from_lengths(isl[m])
        assert mix is not None
        bursts = tail.burst_factors(ts[m], min(slice_s, window_s), (a, b))
        pre = tail.prefill_workers(rate, mix, profile, ttft_ms, attainment, bursts=bursts)
        # decode: throughput and mean KV at the busiest slice's rate, KV tail from the requests' own lengths
        peak = Load(rate * float(bursts[0].max()), float(isl[m].mean()), float(osl[m].mean()))
        itl_s = profile.decode.itl_ms_at(0.5, peak.isl + peak.osl / 2) / 1000.0
        w = np.full(n, 1.0 / n)
        dec = max(decode_replicas(peak, profile, itl_ms, kv_headroom=kv_headroom),
                  tail.decode_kv_workers(peak.rate, isl[m], osl[m], w, itl_s, profile.decode.max_kv_tokens,
                                         kv_headroom, attainment))
        out.append(WindowNeed(a, rate, ceil_replicas(pre), ceil_replicas(dec)))
    return out


def peak_need(needs: list[WindowNeed]) -> tuple[int, int]:
    return (max((n.prefill for n in needs), default=1), max((n.decode for n in needs), default=1))
