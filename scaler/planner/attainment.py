"""SLA counts from latency histograms: the seam through which the live planner is meant to feed
its error-budget loop (`TrafficWindow.slo`) the way replay does. Pure.

Live, the Dynamo frontend exports Prometheus histograms (see docs/metrics.md):
`dynamo_frontend_time_to_first_token_seconds`, `dynamo_frontend_inter_token_latency_seconds` and
`dynamo_frontend_input_sequence_tokens`. Over a window, the increase of each `_bucket{le=...}`
series gives cumulative counts by upper edge; this module turns those into `SLOCounts`.

Reading a target that falls between two edges: the requests in the bucket that straddles the
target cannot be told apart, so they are counted as missed (the met count is the one at the
largest edge at or below the target). That over-states misses by at most that bucket's share, which
errs toward more capacity; a target on an edge is read exactly. The same rule, mirrored, counts
the prompts too long for any worker: only buckets wholly above the length at which the profile's
idle TTFT exceeds the target.

Caveat for ITL: if the frontend observes every token's gap rather than one mean per request, the
ITL share is a share of tokens, not of requests; misses then weigh requests by their length.
The edges themselves are whatever the frontend exports; nothing here assumes particular values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from scaler.policy import SLOCounts


def _sorted(buckets: Mapping[float, float]) -> list[tuple[float, float]]:
    """(upper edge, cumulative count) by edge; +Inf must be present (it is the total)."""
    out = sorted((float(le), max(0.0, float(c))) for le, c in buckets.items())
    if not out or not math.isinf(out[-1][0]):
        raise ValueError("histogram buckets need the +Inf bucket (the total count)")
    return out


def count_at_or_below(buckets: Mapping[float, float], target: float) -> float:
    """Observations known to be <= target: the cumulative count at the largest edge <= target."""
    met = 0.0
    for le, c in _sorted(buckets):
        if le <= target + 1e-12:
            met = c
        else:
            break
    return met


def count_above(buckets: Mapping[float, float], threshold: float) -> float:
    """Observations known to be > threshold: total minus the count at the smallest edge >= threshold."""
    rows = _sorted(buckets)
    total = rows[-1][1]
    for le, c in rows:
        if le >= threshold - 1e-12:
            return max(0.0, total - c)
    return 0.0


def slo_from_histograms(ttft_s: Mapping[float, float], itl_s: Mapping[float, float] | None,
                        ttft_target_ms: float, itl_target_ms: float,
                        isl_tokens: Mapping[float, float] | None = None,
                        unloaded_ttft_ms: Callable[[float], float] | None = None,
                        max_isl: float = 1_000_000.0) -> SLOCounts:
    """Window increases of the three histograms (edges in seconds, and tokens for ISL) -> SLOCounts."""
    rows = _sorted(ttft_s)
    measured = rows[-1][1]
    ttft_missed = measured - count_at_or_below(ttft_s, ttft_target_ms / 1000.0)
    itl_missed = 0.0
    if itl_s:
        itl_total = _sorted(itl_s)[-1][1]
        itl_missed = itl_total - count_at_or_below(itl_s, itl_target_ms / 1000.0)
        if itl_total > 0:  # as a share of the requests measured (see the caveat above)
            itl_missed = itl_missed / itl_total * measured
    unreachable = 0.0
    if isl_tokens and unloaded_ttft_ms is not None:
        limit = _isl_limit(unloaded_ttft_ms, ttft_target_ms, max_isl)
        if limit is not None:
            unreachable = count_above(isl_tokens, limit)
    return SLOCounts(int(round(measured)), int(round(ttft_missed)), int(round(itl_missed)),
                     int(round(min(unreachable, ttft_missed))))


def _isl_limit(unloaded_ttft_ms: Callable[[float], float], target_ms: float, max_isl: float) -> float | None:
    """The prompt length from which an idle worker misses the TTFT target (None: never)."""
    if unloaded_ttft_ms(max_isl) <= target_ms:
        return None
    lo, hi = 1.0, max_isl
    for _ in range(60):
        mid = (lo + hi) / 2
        if unloaded_ttft_ms(mid) > target_ms:
            hi = mid
        else:
            lo = mid
    return hi
