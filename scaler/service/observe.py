"""Observe a live deployment: traffic from Prometheus, pool sizes from the DGD status and the
adapters, conflicting autoscalers and pods the scheduler cannot place from the cluster. The PromQL is the metrics server's signal
mapping (`external_metrics.signals`), so the planner and HPA/KEDA read the same numbers."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adapter import sync
from adapter.models import (
    DGD,
    DGD_PLURAL,
    DGDSA_PLURAL,
    GROUP,
    LABEL_COMPONENT,
    LABEL_DGD,
    adapter_name,
    parse_dgd,
)
from adapter.scale_client import (
    KEDA_GROUP,
    KEDA_PLURAL,
    KEDA_VERSION,
    ScaleClient,
    ScaleState,
)
from adapter.versions import Versions
from external_metrics.prom import PrometheusClient, PrometheusError, read_signal
from external_metrics.signals import LabelNames, Signal, SignalMapping
from scaler.control.policy import list_policies
from scaler.policy import Observation, PoolObservation, TrafficWindow
from scaler.service.capacity import (
    PodState,
    Unschedulable,
    ready_but_for_capacity,
    unschedulable,
)
from scaler.service.config import ServiceConfig
from scaler.service.histograms import HISTOGRAMS, ISL, ITL, TTFT, Buckets, WindowHistograms, by_dgd
from scaler.service.leadership import GuardedScaleClient
from scaler.service.loop import Snapshot

log = logging.getLogger(__name__)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def pod_state(pod: client.V1Pod) -> PodState:
    cond = next((c for c in (pod.status and pod.status.conditions) or [] if c.type == "PodScheduled"), None)
    return PodState(service=(pod.metadata.labels or {}).get(LABEL_COMPONENT, ""),
                    phase=pod.status.phase if pod.status else None,
                    deleting=pod.metadata.deletion_timestamp is not None,
                    scheduled=cond.status if cond else None, reason=cond.reason if cond else None,
                    message=cond.message if cond else None, since=cond.last_transition_time if cond else None)


class ObservationError(RuntimeError):
    pass


class SignalBatch:
    """One round's Prometheus answers for a fleet's DGDs: each signal is read once for every DGD
    of a namespace, one query grouped by DGD and service, instead of about 11 queries per DGD.
    It lives as long as the round's RoundReads, so every round reads afresh."""

    def __init__(self, prom: PrometheusClient) -> None:
        self.prom = prom
        self._answers: dict[str, dict[tuple[str, str], list[float]] | str] = {}
        self._buckets: dict[str, dict[tuple[str, str], Buckets] | str] = {}

    def values(self, mapping: SignalMapping, name: str, namespace: str, dgd: str,
               service: str | None) -> list[float]:
        """The signal's values for a DGD (every service) or one of its services (as the series'
        identity names it). Raises PrometheusError."""
        where = {"namespace": namespace}
        query = mapping.render(name, where)
        if query not in self._answers:
            try:
                index: dict[tuple[str, str], list[float]] = defaultdict(list)
                for v in read_signal(self.prom, mapping, name, where):
                    index[(v.labels.get("dgd", ""), v.labels.get("service", ""))].append(v.value)
                self._answers[query] = dict(index)
            except PrometheusError as exc:
                self._answers[query] = str(exc)  # one failed query per round, not one per DGD
        answer = self._answers[query]
        if isinstance(answer, str):
            raise PrometheusError(answer)
        if service is None:
            return [x for (g, _), xs in answer.items() if g == dgd for x in xs]
        return list(answer.get((dgd, service), []))

    def buckets(self, mapping: SignalMapping, name: str, namespace: str, dgd: str) -> Buckets | None:
        """A histogram signal's buckets for a DGD (scaler.service.histograms), read once for every
        DGD of the namespace; None when it has none. Raises PrometheusError."""
        query = mapping.render(name, {"namespace": namespace})
        if query not in self._buckets:
            try:
                self._buckets[query] = by_dgd(mapping, self.prom.query(query))
            except PrometheusError as exc:
                self._buckets[query] = str(exc)
        answer = self._buckets[query]
        if isinstance(answer, str):
            raise PrometheusError(answer)
        return answer.get((namespace, dgd))


def _not_found(kind: str, namespace: str, name: str) -> ApiException:
    # what the GET the listing replaces would have raised
    exc = ApiException(status=404, reason="Not Found")
    exc.body = f"{kind} {namespace}/{name} not found"
    return exc


class RoundReads:
    """What one fleet round reads of the cluster and Prometheus, shared by the round's DGDs:
    per namespace one LIST of the policies, DGDs, adapters (DGDSAs: their spec.replicas,
    status and resourceVersion are what a /scale GET gives), HPAs, ScaledObjects and the DGDs'
    pods, each made when first asked for; and the round's Prometheus answers (SignalBatch). The
    fleet builds one per round and hands it to each DGD's observer; a failed LIST fails what
    needs it, as the GET it replaces would have. Not thread-safe: a round is one thread."""

    def __init__(self, api: client.ApiClient, versions: Callable[[str], Versions]) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.versions = versions  # namespace -> the served versions (the scale client's discovery)
        self._signals: dict[int, SignalBatch] = {}
        self._lists: dict[tuple[str, str], object] = {}

    def signals(self, prom: PrometheusClient) -> SignalBatch:
        """The round's answers of one Prometheus (a fleet's DGDs share one client)."""
        if id(prom) not in self._signals:
            self._signals[id(prom)] = SignalBatch(prom)
        return self._signals[id(prom)]

    def _list(self, kind: str, namespace: str, read: Callable[[], object]):
        key = (kind, namespace)
        if key not in self._lists:
            try:
                self._lists[key] = read()
            except Exception as exc:  # noqa: BLE001  kept: every DGD of the namespace sees it
                self._lists[key] = exc
        got = self._lists[key]
        if isinstance(got, Exception):
            raise got
        return got

    def _by_name(self, kind: str, namespace: str, group_version: str, plural: str) -> dict[str, dict]:
        def read() -> dict[str, dict]:
            items = self.custom.list_namespaced_custom_object(GROUP, group_version, namespace, plural)["items"]
            return {o["metadata"]["name"]: o for o in items}
        return self._list(kind, namespace, read)

    def policies(self, namespace: str) -> list[dict]:
        return self._list("policies", namespace, lambda: list_policies(self.custom.api_client, namespace))

    def dgd(self, namespace: str, name: str) -> dict:
        found = self._by_name("dgds", namespace, self.versions(namespace).dgd, DGD_PLURAL).get(name)
        if found is None:
            raise _not_found("DynamoGraphDeployment", namespace, name)
        return found

    def scale(self, namespace: str, adapter: str) -> ScaleState:
        """The adapter's /scale as its object holds it (the scale subresource's paths)."""
        obj = self._by_name("adapters", namespace, self.versions(namespace).dgdsa, DGDSA_PLURAL).get(adapter)
        if obj is None:
            raise _not_found("DynamoGraphDeploymentScalingAdapter", namespace, adapter)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return ScaleState(adapter, int(spec.get("replicas", 0)), status.get("replicas"), status.get("selector", ""),
                          obj["metadata"].get("resourceVersion", ""))

    def autoscalers(self, namespace: str) -> list[tuple[str, str, dict]]:
        """(kind, name, scaleTargetRef) of the namespace's HPAs and KEDA ScaledObjects."""
        def read() -> list[tuple[str, str, dict]]:
            out = []
            for hpa in self.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items:
                ref = hpa.spec.scale_target_ref
                out.append((sync.HPA_KIND, hpa.metadata.name,
                            {"kind": ref.kind, "name": ref.name, "apiVersion": ref.api_version}))
            try:
                sos = self.custom.list_namespaced_custom_object(KEDA_GROUP, KEDA_VERSION, namespace, KEDA_PLURAL)
            except ApiException as exc:
                if exc.status != 404:  # KEDA not installed
                    raise
                sos = {"items": []}
            out += [(sync.SCALED_OBJECT_KIND, so["metadata"]["name"], (so.get("spec") or {}).get("scaleTargetRef") or {})
                    for so in sos.get("items", [])]
            return out
        return self._list("autoscalers", namespace, read)

    def pods(self, namespace: str, dgd: str) -> list[client.V1Pod]:
        """The DGD's pods (by the label Dynamo's operator sets)."""
        pods = self._list("pods", namespace,
                          lambda: self.core.list_namespaced_pod(namespace, label_selector=LABEL_DGD).items)
        return [p for p in pods if (p.metadata.labels or {}).get(LABEL_DGD) == dgd]


KV_TOKENS = "planner_kv_tokens"
# The decode pool's KV tokens held: the KV router's blocks per decode worker (every engine, the
# mocker too, with --router-mode kv) times the model's KV block size, both from the frontend.
# Summed over frontends (each router counts what it routed); prompt blocks only, see held_tokens.
# A planner input, not a scaling
# signal; optional: without it the online fit learns no KV capacity (scaler/planner/online_fit.py).
PLANNER_SIGNALS = {
    KV_TOKENS: Signal(
        description="KV tokens held by the decode workers, as the frontend's KV router counts them",
        unit="tokens",
        query=("sum by ({by}) ((sum without (worker_id, dp_rank, worker_type) "
               '(dynamo_frontend_worker_active_decode_blocks{worker_type="decode",{sel}})'
               " * max without (model) (dynamo_frontend_model_kv_cache_block_size{{sel}})){join})")),
}


def held_tokens(router_tokens: int, isl: float | None, osl: float | None) -> int:
    """The decode pool's KV tokens held, from the router's count: Dynamo 1.6.1's router counts a
    request's prompt blocks for as long as it runs, while the worker also holds the tokens it has
    generated, half the output on average over the requests in flight."""
    if router_tokens <= 0 or not isl or not osl or not (isl > 0 and osl > 0 and math.isfinite(isl + osl)):
        return router_tokens
    return int(round(router_tokens * (1.0 + osl / (2.0 * isl))))


def signal_mapping(cfg: ServiceConfig) -> SignalMapping:
    """The metrics server's signal mapping (the shared signals file, if given), averaged over
    two planning intervals; without a file, the defaults under the config's label names."""
    window = f"{max(2, int(round(cfg.planner.interval_s * 2)))}s"
    if cfg.signals_file:
        return SignalMapping.load(cfg.signals_file).model_copy(update={"window": window})
    if cfg.signals is not None:
        return SignalMapping.from_overrides(cfg.signals).model_copy(update={"window": window})
    lb = cfg.labels
    return SignalMapping(labels=LabelNames(namespace=lb.namespace, dgd=lb.dgd, service=lb.service), window=window)


class LiveObserver:
    """Reads one observation per tick. An input the decision needs that Prometheus does not have
    (no series, only NaN samples, an error or a malformed answer) is reported in
    `Snapshot.missing` for the pools it concerns, never read as zero: idle is a request counter
    that is present and flat, not one that is absent."""

    def __init__(self, cfg: ServiceConfig, api: client.ApiClient, prom: PrometheusClient,
                 mapping: SignalMapping | None = None) -> None:
        self.cfg, self.prom = cfg, prom
        # the planner's own inputs beside the shared signals (a signals file may replace them)
        self.mapping = (mapping or signal_mapping(cfg)).with_defaults({**HISTOGRAMS, **PLANNER_SIGNALS})
        d = cfg.deployment
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.scale = ScaleClient(api, d.namespace)
        self.adapters = {svc: adapter_name(d.name, svc) for svc in (d.prefill_service, d.decode_service)}
        self.components = {d.prefill_service: cfg.labels.prefill_component,
                           d.decode_service: cfg.labels.decode_component}
        # the Prometheus error of the latest observation, None when every query was answered
        self.prom_error: str | None = "not queried yet"
        # in a fleet round, the round's shared reads (the fleet sets them); else this observer's own
        self.reads: RoundReads | None = None
        self._pods_error: str | None = None
        # what a window's requests are counted against: the SLA in effect (the planner's, which
        # the API can change) and the profile's idle TTFT by prompt length (prompts beyond reach)
        self.sla: Callable[[], tuple[float, float]] = lambda: (cfg.planner.ttft_ms, cfg.planner.itl_ms)
        self.unloaded_ttft_ms: Callable[[float], float] | None = None
        self._hist_error: str | None = None

    def _signal(self, name: str, service: str | None = None, combine=sum) -> float | None:
        """One signal for the deployment (or one of its services); None when Prometheus has no
        data for it, never a made-up zero. After one failed query the rest of the observation
        does not query again, so an unreachable Prometheus costs one timeout per tick."""
        if self.prom_error is not None:
            return None
        d = self.cfg.deployment
        try:
            if self.reads is not None:
                values = self.reads.signals(self.prom).values(self.mapping, name, d.namespace, d.name,
                                                              self._series_service(service))
            else:
                values = [v.value for v in read_signal(self.prom, self.mapping, name, self._where(service))]
        except PrometheusError as exc:
            self.prom_error = str(exc)[:300]
            return None
        return combine(values) if values else None

    def _histograms(self) -> WindowHistograms:
        """The window's bucket increases of the DGD's frontend histograms. Optional inputs: a
        failed query is logged (once per distinct error) and read as no histograms, which leaves
        the planner on mean latency; it is no missing data."""
        if self.prom_error is not None:
            return WindowHistograms()
        d = self.cfg.deployment
        got: dict[str, Buckets | None] = {}
        try:
            for name in (TTFT, ITL, ISL):
                if self.reads is not None:
                    got[name] = self.reads.signals(self.prom).buckets(self.mapping, name, d.namespace, d.name)
                else:
                    samples = self.prom.query(self.mapping.render(name, self._where(None)))
                    got[name] = by_dgd(self.mapping, samples).get((d.namespace, d.name))
        except PrometheusError as exc:
            text = str(exc)[:300]
            if text != self._hist_error:
                log.warning("frontend histograms not read: attainment is not measured",
                            extra={"error": text, "dgd": f"{d.namespace}/{d.name}"})
            self._hist_error = text
            return WindowHistograms()
        self._hist_error = None
        return WindowHistograms(got[TTFT], got[ITL], got[ISL])

    def _where(self, service: str | None) -> dict[str, str]:
        """The deployment's series, or one pool's: by its service label where the series carry
        one (or the mapping names a component after it), else by its Dynamo component."""
        d = self.cfg.deployment
        where = {"namespace": d.namespace, "dgd": d.name}
        if service is not None:
            if self.mapping.preset == "dgd-labels" or service in self.mapping.services.values():
                where["service"] = service
            else:
                where["dynamo_component"] = self.components[service]
        return where

    def _series_service(self, service: str | None) -> str | None:
        """The `service` identity a pool's series carry (`_where`'s filter, as a result label)."""
        if service is None or self.mapping.preset == "dgd-labels" or service in self.mapping.services.values():
            return service
        comp = self.components[service]
        return self.mapping.services.get(comp, comp)

    def _why(self, what: str) -> str:
        return f"Prometheus error: {self.prom_error}" if self.prom_error else f"no data for {what}"

    def _unschedulable(self) -> dict[str, Unschedulable]:
        """Per service of the DGD (pods by the labels Dynamo's operator sets), its pods Pending
        unschedulable for longer than planner.unschedulable_after_s. A failed read is logged
        (once per distinct error) and read as none: it must not stop planning."""
        d = self.cfg.deployment
        try:
            pods = (self.reads.pods(d.namespace, d.name) if self.reads is not None else
                    self.core.list_namespaced_pod(d.namespace, label_selector=f"{LABEL_DGD}={d.name}").items)
        except client.exceptions.ApiException as exc:
            text = f"{exc.status} {exc.reason}"
            if text != self._pods_error:
                log.warning("pods not read: unschedulable pods are not seen", extra={"error": text})
            self._pods_error = text
            return {}
        self._pods_error = None
        states = [pod_state(p) for p in pods if LABEL_COMPONENT in (p.metadata.labels or {})]
        return unschedulable(states, dt.datetime.now(dt.UTC), self.cfg.planner.unschedulable_after_s)

    def _pool(self, svc: str, dgd: DGD, requested: int, isl: float | None,
              stuck: int = 0) -> tuple[PoolObservation, str | None]:
        """Ready pods up to what the adapter asks for are active; the rest of the request is
        starting, but for pods the scheduler cannot place (no capacity is on its way there);
        ready pods beyond it are on their way out. The second value says why the pool's own
        series are missing, if they are."""
        st = (dgd.status.services.get(svc) if dgd.status else None)
        ready = (st.ready_replicas if st and st.ready_replicas is not None else 0)
        queued_v = self._signal("dynamo_queue_depth", svc)
        inflight_v = self._signal("dynamo_inflight_requests", svc)
        kv = self._signal("dynamo_kv_cache_usage", svc, combine=_mean)
        # optional, for the decode pool only: absent is None (the online fit then learns no KV
        # capacity), never a reason to hold
        tokens = self._signal(KV_TOKENS) if svc == self.cfg.deployment.decode_service else None
        missing = None
        if queued_v is None and inflight_v is None:
            missing = self._why(f"{svc} (dynamo_queue_depth, dynamo_inflight_requests)")
        # one of the two present proves the workers are scraped; the other may not be exported
        queued, inflight = int(queued_v or 0), int(inflight_v or 0)
        if kv is not None and kv > 1.0:  # some exporters report percent
            kv /= 100.0
        return PoolObservation(active=min(ready, requested), starting=max(0, requested - ready - stuck),
                               draining=max(0, ready - requested),
                               running_requests=max(0, inflight - queued),
                               queued_requests=queued, queued_tokens=int(queued * (isl or 0)),
                               active_tokens=int(round(tokens)) if tokens is not None and tokens > 0 else 0,
                               kv_usage=kv), missing

    def observe(self) -> Snapshot:
        d, reads = self.cfg.deployment, self.reads
        # in the version the cluster serves (the scale client discovered it), either shape
        raw = (reads.dgd(d.namespace, d.name) if reads is not None else
               self.custom.get_namespaced_custom_object(GROUP, self.scale.versions.dgd, d.namespace, DGD_PLURAL,
                                                        d.name))
        dgd = parse_dgd(raw)
        self.prom_error = None
        window = self.mapping.window_seconds()
        rate = self._signal("dynamo_request_rate")
        traffic_missing = (None if rate is not None else
                           self._why("the frontend's request rate (dynamo_request_rate)"))
        isl = self._signal("dynamo_input_sequence_tokens", combine=_mean)
        ttft = self._signal("dynamo_ttft_seconds", combine=_mean)
        itl = self._signal("dynamo_itl_seconds", combine=_mean)
        traffic = TrafficWindow(duration_s=window, num_requests=int(round((rate or 0.0) * window)), avg_isl=isl,
                                avg_osl=self._signal("dynamo_output_sequence_tokens", combine=_mean),
                                avg_ttft_ms=ttft * 1000 if ttft is not None else None,
                                avg_itl_ms=itl * 1000 if itl is not None else None)
        current, blocked = {}, {}
        for svc, name in self.adapters.items():
            if reads is not None:
                st = reads.scale(d.namespace, name)
                if isinstance(self.scale, GuardedScaleClient):
                    # its write is a compare-and-swap on this read, as on one of its own GETs
                    self.scale._seen[name] = st
                others = sync.other_scalers(name, dgd, reads.autoscalers(d.namespace))
            else:
                st = self.scale.get(name)
                others = self.scale.other_scalers(name, dgd)  # the DGD just read: no second read per adapter
            current[svc] = st.spec_replicas
            if others:
                blocked[svc] = f"also scaled by {', '.join(others)}"
        stuck = self._unschedulable()
        n_stuck = {svc: u.pods for svc, u in stuck.items()}
        prefill, prefill_missing = self._pool(d.prefill_service, dgd, current[d.prefill_service], isl,
                                              n_stuck.get(d.prefill_service, 0))
        decode, decode_missing = self._pool(d.decode_service, dgd, current[d.decode_service], isl,
                                            n_stuck.get(d.decode_service, 0))
        decode = replace(decode, active_tokens=held_tokens(decode.active_tokens, traffic.avg_isl, traffic.avg_osl))
        missing = {svc: traffic_missing or why
                   for svc, why in ((d.prefill_service, prefill_missing), (d.decode_service, decode_missing))
                   if traffic_missing or why}
        hists = self._histograms()
        traffic = replace(traffic, slo=hists.slo(*self.sla(), unloaded_ttft_ms=self.unloaded_ttft_ms))
        obs = Observation(now_s=time.monotonic(), traffic=traffic, prefill=prefill, decode=decode)
        ready = bool(dgd.status and dgd.status.ready)
        if not ready and stuck and dgd.status:
            # not Ready only for pods that cannot be placed: waiting for Ready would freeze every
            # pool, also the scale-down that frees capacity
            ready = ready_but_for_capacity(
                {svc: s.effective_replicas for svc, s in dgd.spec.services.items()},
                {svc: st.ready_replicas or 0 for svc, st in dgd.status.services.items()}, stuck)
        pools = (d.prefill_service, d.decode_service)
        return Snapshot(obs, ready, current, blocked, missing,
                        unschedulable={svc: u for svc, u in stuck.items() if svc in pools},
                        prompt_buckets=hists.prompts())
