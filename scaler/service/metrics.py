"""The planner's own Prometheus metrics (dynamo_planner_*)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from scaler.service.histograms import attainment
from scaler.service.loop import TickResult
from scaler.policy import Diagnostics


class PlannerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.predicted = Gauge("dynamo_planner_predicted_request_rate", "forecast requests/s provisioned for", registry=r)
        self.observed = Gauge("dynamo_planner_observed_request_rate", "observed requests/s", registry=r)
        self.target = Gauge("dynamo_planner_target_replicas", "replicas decided per pool", ["service"], registry=r)
        self.planned = Gauge("dynamo_planner_planned_replicas", "replicas planned before overrides", ["service"], registry=r)
        self.correction = Gauge("dynamo_planner_correction_factor", "learned latency correction", ["pool"], registry=r)
        self.startup = Gauge("dynamo_planner_startup_estimate_seconds", "measured worker start-up time", registry=r)
        self.decisions = Counter("dynamo_planner_decisions", "decisions by outcome", ["outcome"], registry=r)
        self.errors = Counter("dynamo_planner_observation_errors", "failed planning ticks", registry=r)
        self.tick_errors = Counter("dynamo_planner_tick_errors", "failed planning ticks by exception type",
                                   ["error"], registry=r)
        self.held = Gauge("dynamo_planner_held_missing_data",
                          "1 while the pool keeps its replicas because an input the decision needs is missing",
                          ["service"], registry=r)
        self.holds = Counter("dynamo_planner_missing_data_holds", "decisions that held the pool for missing data",
                             ["service"], registry=r)
        self.unschedulable = Gauge("dynamo_planner_unschedulable_pods",
                                   "pods of the pool Pending unschedulable longer than unschedulable_after_s "
                                   "(while any are, the pool is not raised)", ["service"], registry=r)
        self.last_tick = Gauge("dynamo_planner_last_tick_timestamp_seconds",
                               "Unix time of the last completed planning decision", registry=r)
        self.profile_source = Gauge("dynamo_planner_profile_info",
                                    "1 for where the performance profile came from: file, bundled (the mocker's), "
                                    "or online-fit (no profile file: fitted from observations)",
                                    ["source"], registry=r)
        self.attainment = Gauge("dynamo_planner_attainment",
                                "share of the window's requests that met the target (kind ttft or itl), measured "
                                "from the frontend's histograms; absent when nothing was measured",
                                ["kind"], registry=r)
        self.window_requests = Gauge("dynamo_planner_window_requests",
                                     "the window's SLA counts from the frontend's histograms: measured, "
                                     "ttft_missed, itl_missed, unreachable (absent without a TTFT histogram)",
                                     ["kind"], registry=r)
        self.dependency_up = Gauge("dynamo_planner_dependency_up",
                                   "1 when the last tick reached the dependency (prometheus, kubernetes)",
                                   ["dependency"], registry=r)

    def record(self, res: TickResult) -> None:
        d = res.decision.details if res.decision else Diagnostics()
        if d.forecast_rate is not None:
            self.predicted.set(d.forecast_rate)
        if d.rate is not None:
            self.observed.set(d.rate)
        for pool, correction in (("prefill", d.prefill_correction), ("decode", d.decode_correction)):
            if correction is not None:
                self.correction.labels(pool).set(correction)
        if d.startup_estimate_s is not None:
            self.startup.set(d.startup_estimate_s)
        for svc, n in res.record.targets.items():
            self.target.labels(svc).set(n)
        for svc, n in res.record.planned.items():
            self.planned.labels(svc).set(n)
        for svc in res.record.targets:
            self.held.labels(svc).set(1 if svc in res.held else 0)
            if svc in res.held:
                self.holds.labels(svc).inc()
            self.unschedulable.labels(svc).set(res.unschedulable[svc].pods if svc in res.unschedulable else 0)
        self.last_tick.set(res.record.at.timestamp())
        self._record_slo(res)
        # not written: writes are off (paused, advisory, deployment not ready) or another scaler owns a pool
        held = res.mode != "active" or any(svc in res.blocked for svc in res.record.targets)
        self.decisions.labels("written" if res.written else "held" if held else "unchanged").inc()

    def _record_slo(self, res: TickResult) -> None:
        slo = res.slo
        counts = ({"measured": slo.measured, "ttft_missed": slo.ttft_missed, "itl_missed": slo.itl_missed,
                   "unreachable": slo.unreachable} if slo else {})
        _set_or_clear(self.window_requests, counts, ("measured", "ttft_missed", "itl_missed", "unreachable"))
        _set_or_clear(self.attainment, attainment(slo), ("ttft", "itl"))


def _set_or_clear(gauge: Gauge, values: dict[str, float], kinds: tuple[str, ...]) -> None:
    # no histogram, or an idle window, is no data: the series goes rather than reading zero
    for kind in kinds:
        if kind in values:
            gauge.labels(kind).set(values[kind])
        else:
            try:
                gauge.remove(kind)
            except KeyError:
                pass
