"""The frontend's latency and prompt-length histograms over the planning window, read live:
the bucket increases behind the measured attainment (`TrafficWindow.slo`, through
scaler.planner.attainment) and the prompt mix of the tail model (`observe_prompt_histogram`).

The queries are signals rendered by the metrics server's mapping (`external_metrics.signals`),
so they find a DGD's frontend series exactly as the other signals do under either preset, and a
signals file that defines a signal of the same name replaces the query. They are not scaling
signals of the metrics server: each answers one series per bucket (`le`), summed over the DGD's
pods by identity and edge. A fleet round reads each once for every DGD of a namespace."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from external_metrics.prom import Sample
from external_metrics.signals import Signal, SignalMapping
from scaler.planner.attainment import slo_from_histograms
from scaler.policy import SLOCounts

TTFT, ITL, ISL = "planner_ttft_buckets", "planner_itl_buckets", "planner_isl_buckets"
_BUCKETS = "sum by ({by}, le) (increase(%s_bucket{{sel}}[{window}]){join})"
HISTOGRAMS = {
    TTFT: Signal(query=_BUCKETS % "dynamo_frontend_time_to_first_token_seconds", unit="s", windowed=True,
                 description="requests by time to first token, cumulative by bucket edge, increase over the window"),
    ITL: Signal(query=_BUCKETS % "dynamo_frontend_inter_token_latency_seconds", unit="s", windowed=True,
                description="token gaps by inter-token latency, cumulative by bucket edge, increase over the window"),
    ISL: Signal(query=_BUCKETS % "dynamo_frontend_input_sequence_tokens", unit="tokens", windowed=True,
                description="requests by prompt length, cumulative by bucket edge, increase over the window"),
}

Buckets = dict[float, float]
"""Upper edge -> cumulative count increase over the window (+Inf is the total)."""


def with_histograms(mapping: SignalMapping) -> SignalMapping:
    """The mapping with the histogram queries added where it does not define them itself."""
    return mapping.with_defaults(HISTOGRAMS)


def by_dgd(mapping: SignalMapping, samples: Iterable[Sample]) -> dict[tuple[str, str], Buckets]:
    """Bucket counts per (Kubernetes namespace, DGD), every service and model of the DGD summed,
    from the samples of one histogram query (series without a numeric `le` are left out)."""
    out: dict[tuple[str, str], Buckets] = defaultdict(dict)
    for s in samples:
        try:
            le = float(s.labels.get("le", "nan"))
        except ValueError:
            continue
        if math.isnan(le):
            continue
        ns, ident = mapping.identity(s.labels)
        b = out[(ns, ident.get("dgd", ""))]
        b[le] = b.get(le, 0.0) + max(0.0, s.value)
    return dict(out)


@dataclass(frozen=True)
class WindowHistograms:
    """One window's bucket increases of a DGD's frontend; None where the frontend exports none
    (no series is no data, not zero: an idle frontend's histograms are present and flat)."""

    ttft: Buckets | None = None
    itl: Buckets | None = None
    isl: Buckets | None = None

    def slo(self, ttft_target_ms: float, itl_target_ms: float,
            unloaded_ttft_ms: Callable[[float], float] | None = None) -> SLOCounts | None:
        """The window's SLA counts, or None without a TTFT histogram (the planner then corrects
        from the mean latency). Histograms without the +Inf bucket count as absent."""
        if not _complete(self.ttft):
            return None
        return slo_from_histograms(self.ttft, self.itl if _complete(self.itl) else None, ttft_target_ms,
                                   itl_target_ms, isl_tokens=self.isl if _complete(self.isl) else None,
                                   unloaded_ttft_ms=unloaded_ttft_ms)

    def prompts(self) -> Buckets | None:
        """The ISL buckets for the tail model, when any prompt arrived in the window."""
        return self.isl if _complete(self.isl) and self.isl[math.inf] > 0 else None


def _complete(buckets: Buckets | None) -> bool:
    return bool(buckets) and math.inf in buckets


def attainment(slo: SLOCounts | None) -> dict[str, float]:
    """Share of the window's measured requests that met each target (none when nothing was
    measured: an idle window has no attainment)."""
    if slo is None or slo.measured <= 0:
        return {}
    return {"ttft": max(0.0, 1.0 - slo.ttft_missed / slo.measured),
            "itl": max(0.0, 1.0 - slo.itl_missed / slo.measured)}


def measured_attainment(slo: SLOCounts | None) -> dict | None:
    """The window's counts and attainment as the REST status shows them (None: not measured)."""
    if slo is None:
        return None
    return {"measured": slo.measured, "ttft_missed": slo.ttft_missed, "itl_missed": slo.itl_missed,
            "unreachable": slo.unreachable, "attainment": attainment(slo)}
