"""Observed traffic -> a synthetic trace for the replay engine. Pure: no I/O.

Prometheus keeps no per-request log, only what the frontend counts: requests per step (the
increase of `dynamo_frontend_requests_total`) and the prompt and answer lengths as cumulative
histograms (`dynamo_frontend_input_sequence_tokens`, `..._output_sequence_tokens`). The rebuild
draws, for every step, as many requests as the frontend counted in it, at arrival times spread
uniformly at random over the step (a Poisson process given its count), with lengths drawn from
that step's histograms: a bucket by its share, then a length uniformly within the bucket (the
open `+Inf` bucket spans up to twice the largest finite edge, as the planner reads it). A step
whose histograms are empty uses the whole window's. Same inputs and seed, same trace.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dynamo_scaling.traces import Request

Histogram = Mapping[float, float]
"""Cumulative counts by upper bucket edge (`le`), `math.inf` for +Inf, as Prometheus keeps them."""


class RebuildError(ValueError):
    pass


@dataclass(frozen=True)
class ObservedTraffic:
    """What the frontend counted over a window cut into equal steps: `counts[i]` requests in
    step i (fractional: Prometheus extrapolates increases), and per step the increase of each
    length histogram (an empty mapping where the step has none)."""

    step_s: float
    counts: Sequence[float]
    isl: Sequence[Histogram]
    osl: Sequence[Histogram]
    start_s: float = 0.0  # Unix time of the first step's start (for reports only)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.step_s > 0:
            raise RebuildError("step_s must be > 0")
        if not (len(self.counts) == len(self.isl) == len(self.osl)):
            raise RebuildError("counts, isl and osl need one entry per step")
        if any(not math.isfinite(c) or c < 0 for c in self.counts):
            raise RebuildError("request counts must be finite and >= 0")


def whole_counts(counts: Sequence[float]) -> list[int]:
    """Whole requests per step whose running total follows the fractional one (rounded), so
    the rebuilt total is the observed total, rounded once rather than per step."""
    out, total, given = [], 0.0, 0
    for c in counts:
        total += c
        n = int(math.floor(total + 0.5)) - given
        out.append(max(0, n))
        given += max(0, n)
    return out


def buckets(hist: Histogram) -> list[tuple[float, float, float]]:
    """(lower edge, upper edge, count) of each non-empty bucket of a cumulative histogram; the
    +Inf bucket's upper edge is twice the largest finite edge."""
    edges = sorted((float(le), max(0.0, float(c))) for le, c in hist.items())
    finite = [le for le, _ in edges if math.isfinite(le)]
    top = 2.0 * finite[-1] if finite else 2.0
    out, lower, prev = [], 0.0, 0.0
    for le, c in edges:
        upper = le if math.isfinite(le) else max(top, lower + 1.0)
        n = c - prev
        prev = max(prev, c)
        if n > 0:
            out.append((lower, upper, n))
        lower = upper
    return out


def merged(hists: Sequence[Histogram]) -> dict[float, float]:
    """The sum of cumulative histograms over steps (edges missing in a step count as 0 there)."""
    out: dict[float, float] = {}
    for h in hists:
        for le, c in h.items():
            out[float(le)] = out.get(float(le), 0.0) + max(0.0, float(c))
    return out


def _draw(rng: random.Random, bins: list[tuple[float, float, float]]) -> int:
    total = sum(n for _, _, n in bins)
    pick = rng.random() * total
    for lower, upper, n in bins:
        pick -= n
        if pick < 0:
            break
    # whole tokens in (lower, upper], at least 1
    lo, hi = max(1, math.floor(lower) + 1), max(1, math.floor(upper))
    return rng.randint(lo, max(lo, hi))


def rebuild(traffic: ObservedTraffic, seed: int = 0) -> list[Request]:
    """The synthetic trace: times in ms from the window's start, rounded to whole ms (so the
    trace reads back from a file exactly as it was replayed), sorted by arrival."""
    counts = whole_counts(traffic.counts)
    isl_all, osl_all = buckets(merged(traffic.isl)), buckets(merged(traffic.osl))
    if sum(counts) and not isl_all:
        raise RebuildError("requests were counted but the input sequence length histogram is empty")
    if sum(counts) and not osl_all:
        raise RebuildError("requests were counted but the output sequence length histogram is empty")
    rng = random.Random(seed)
    step_ms = traffic.step_s * 1000.0
    out: list[Request] = []
    for i, n in enumerate(counts):
        if not n:
            continue
        isl = buckets(traffic.isl[i]) or isl_all
        osl = buckets(traffic.osl[i]) or osl_all
        for _ in range(n):
            t = round((i + rng.random()) * step_ms)
            out.append(Request(float(min(t, round((i + 1) * step_ms) - 1)), _draw(rng, isl), _draw(rng, osl)))
    out.sort(key=lambda r: r.timestamp_ms)
    return out
