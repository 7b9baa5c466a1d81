"""Observe a live deployment: traffic from Prometheus, pool sizes from the DGD status and the
adapters, conflicting autoscalers from the cluster."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import httpx
from kubernetes import client

from adapter.models import DGD, DGD_PLURAL, GROUP, VERSION, adapter_name
from adapter.scale_client import ScaleClient
from scaler.live.config import ServiceConfig
from scaler.live.loop import Snapshot
from scaler.policy import Observation, PoolObservation, TrafficWindow

log = logging.getLogger(__name__)


class ObservationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Queries:
    """PromQL templates; {sel} is the DGD's label matcher, {svc} a service matcher, {w} the window."""

    requests: str = "sum(increase(dynamo_frontend_requests_total{{{sel}}}[{w}]))"
    isl: str = ("sum(increase(dynamo_frontend_input_sequence_tokens_sum{{{sel}}}[{w}])) / "
                "sum(increase(dynamo_frontend_input_sequence_tokens_count{{{sel}}}[{w}]))")
    osl: str = ("sum(increase(dynamo_frontend_output_sequence_tokens_sum{{{sel}}}[{w}])) / "
                "sum(increase(dynamo_frontend_output_sequence_tokens_count{{{sel}}}[{w}]))")
    ttft_s: str = ("sum(increase(dynamo_frontend_time_to_first_token_seconds_sum{{{sel}}}[{w}])) / "
                   "sum(increase(dynamo_frontend_time_to_first_token_seconds_count{{{sel}}}[{w}]))")
    itl_s: str = ("sum(increase(dynamo_frontend_inter_token_latency_seconds_sum{{{sel}}}[{w}])) / "
                  "sum(increase(dynamo_frontend_inter_token_latency_seconds_count{{{sel}}}[{w}]))")
    queued: str = 'sum({{__name__=~"vllm:num_requests_waiting|dynamo_component_num_requests_waiting",{sel},{svc}}})'
    running: str = 'sum({{__name__=~"vllm:num_requests_running|dynamo_component_num_requests_running",{sel},{svc}}})'
    kv_usage: str = ('avg({{__name__=~"vllm:kv_cache_usage_perc|dynamo_component_gpu_cache_usage_percent|'
                     'dynamo_component_kvstats_gpu_cache_usage_percent",{sel},{svc}}})')


class PrometheusClient:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)

    def scalar(self, promql: str) -> float | None:
        try:
            r = self.http.get("/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise ObservationError(f"Prometheus unreachable: {exc}") from exc
        if r.status_code != 200:
            raise ObservationError(f"Prometheus answered {r.status_code}: {r.text[:200]}")
        result = r.json().get("data", {}).get("result", [])
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None


class LiveObserver:
    def __init__(self, cfg: ServiceConfig, api: client.ApiClient, prom: PrometheusClient,
                 queries: Queries | None = None) -> None:
        self.cfg, self.prom, self.q = cfg, prom, queries or Queries()
        d = cfg.deployment
        self.custom = client.CustomObjectsApi(api)
        self.scale = ScaleClient(api, d.namespace)
        self.adapters = {svc: adapter_name(d.name, svc) for svc in (d.prefill_service, d.decode_service)}
        lb = cfg.labels
        self.sel = f'{lb.namespace}="{d.namespace}",{lb.dgd}="{d.name}"'

    def _q(self, template: str, service: str | None = None) -> float | None:
        svc = f'{self.cfg.labels.service}="{service}"' if service else ""
        return self.prom.scalar(template.format(sel=self.sel, svc=svc, w=f"{int(self.cfg.planner.interval_s * 2)}s"))

    def _pool(self, svc: str, dgd: DGD, requested: int, isl: float | None) -> PoolObservation:
        """Ready pods up to what the adapter asks for are active; the rest of the request is
        starting; ready pods beyond it are on their way out."""
        st = (dgd.status.services.get(svc) if dgd.status else None)
        ready = (st.ready_replicas if st and st.ready_replicas is not None else 0)
        queued = int(self._q(self.q.queued, svc) or 0)
        kv = self._q(self.q.kv_usage, svc)
        if kv is not None and kv > 1.0:  # some exporters report percent
            kv /= 100.0
        return PoolObservation(active=min(ready, requested), starting=max(0, requested - ready),
                               draining=max(0, ready - requested),
                               running_requests=int(self._q(self.q.running, svc) or 0),
                               queued_requests=queued, queued_tokens=int(queued * (isl or 0)), kv_usage=kv)

    def observe(self) -> Snapshot:
        d = self.cfg.deployment
        raw = self.custom.get_namespaced_custom_object(GROUP, VERSION, d.namespace, DGD_PLURAL, d.name)
        dgd = DGD.model_validate(raw)
        window = self.cfg.planner.interval_s * 2
        n = self._q(self.q.requests) or 0.0
        isl = self._q(self.q.isl)
        ttft, itl = self._q(self.q.ttft_s), self._q(self.q.itl_s)
        traffic = TrafficWindow(duration_s=window, num_requests=int(round(n)), avg_isl=isl, avg_osl=self._q(self.q.osl),
                                avg_ttft_ms=ttft * 1000 if ttft is not None else None,
                                avg_itl_ms=itl * 1000 if itl is not None else None)
        current, blocked = {}, {}
        for svc, name in self.adapters.items():
            current[svc] = self.scale.get(name).spec_replicas
            others = self.scale.other_scalers(name)
            if others:
                blocked[svc] = f"also scaled by {', '.join(others)}"
        obs = Observation(now_s=time.monotonic(), traffic=traffic,
                          prefill=self._pool(d.prefill_service, dgd, current[d.prefill_service], isl),
                          decode=self._pool(d.decode_service, dgd, current[d.decode_service], isl))
        ready = bool(dgd.status and dgd.status.ready)
        return Snapshot(obs, ready, current, blocked)
