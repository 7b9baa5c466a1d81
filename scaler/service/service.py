"""The planner as a process: the planning loop in a thread, the control API and /metrics over
HTTPS (127.0.0.1 unless told otherwise; plain HTTP only when asked for), overrides restored from
the cluster at start."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3
import uvicorn
from fastapi.responses import JSONResponse, Response
from kubernetes import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapter.scale_client import ScaleClient
from external_metrics.prom import PrometheusClient
from external_metrics.tls import ServingCert
from scaler.control.api import MAX_BODY_BYTES, ControlService, Limits, NotPersisted, create_app
from scaler.control.audit import Audit
from scaler.control.auth import Authorizer, Caller
from scaler.control.policy import PolicyConflict, PolicyStore
from scaler.control.state import ControlState, SLATargets
from scaler.control.store import ConfigMapStore
from scaler.service import sla_request
from scaler.service.actuate import ScaleActuator
from scaler.service.config import ServiceConfig
from scaler.service.loop import PlannerLoop, PoolServices
from scaler.service.metrics import PlannerMetrics
from scaler.service.observe import LiveObserver
from scaler.planner.predictive import PredictivePlanner
from scaler.profile import planner_profile

log = logging.getLogger(__name__)


def _unreachable(exc: BaseException) -> bool:
    """The API server could not be reached or failed, as opposed to answering with an error."""
    if isinstance(exc, client.exceptions.ApiException):
        return not exc.status or exc.status >= 500
    return isinstance(exc, (urllib3.exceptions.HTTPError, OSError))


def backoff_s(interval_s: float, failures: int) -> float:
    """Wait after `failures` failed ticks in a row: doubling from the interval, at most 8 of them
    (a minute at most) so planning resumes soon after an outage ends."""
    if failures <= 0:
        return interval_s
    cap = max(interval_s, min(60.0, 8 * interval_s))
    return min(cap, interval_s * 2 ** (failures - 1))


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Options:
    prometheus_url: str
    api_port: int = 8085
    bind_address: str = "127.0.0.1"
    advisory: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_sans: tuple[str, ...] = ()
    insecure_http: bool = False  # plain HTTP: only when the operator asks for it
    api_docs: bool = False
    max_body_bytes: int = MAX_BODY_BYTES


class PlannerService:
    def __init__(self, cfg: ServiceConfig, api: client.ApiClient, opts: Options, authorizer: Authorizer) -> None:
        self.cfg, self.opts, self.api = cfg, opts, api
        self._request_error: str | None = None
        d = cfg.deployment
        profile, self.profile_source = planner_profile(cfg.profile_file)
        self.store = ConfigMapStore(api, d.namespace, cfg.configmap)
        default_sla = SLATargets(ttft_ms=cfg.planner.ttft_ms, itl_ms=cfg.planner.itl_ms,
                                 attainment_target=cfg.planner.attainment_target)
        # operator state lives in the DGD's DynamoScalingPolicy where the CRD is installed; the
        # ConfigMap only where it is not (docs/policy.md)
        self.policy_store: PolicyStore | None = None
        self._policy_notes: set[str] = set()
        if PolicyStore.served(api):
            self.policy_store = PolicyStore(api, d.namespace, d.name)
            # --advisory is the mode of a policy the planner creates; an existing policy's mode rules
            state = self.policy_store.load(ControlState(sla=default_sla, advisory=opts.advisory), configmap=self.store)
        else:
            state = self.store.load(default_sla)
            if opts.advisory:
                state.advisory = True
        self.pools = PoolServices(d.prefill_service, d.decode_service)
        self.policy = PredictivePlanner(profile, cfg.planner)
        self.metrics = PlannerMetrics()
        self.metrics.profile_source.labels(self.profile_source).set(1)
        audit = Audit(api, d.namespace, {"api_version": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                                         "name": d.name})
        self.control = ControlService(state, None if self.policy_store else self.store.save, audit, self.status,
                                      services=self.pools.names, limits=self.limits,
                                      save_change=self._save_policy if self.policy_store else None)
        self.observer = LiveObserver(cfg, api, PrometheusClient(opts.prometheus_url, connection=cfg.prometheus))
        self.loop = PlannerLoop(self.policy, self.observer,
                                ScaleActuator(ScaleClient(api, d.namespace), d.name), self.control, self.pools)
        self.app = create_app(self.control, authorizer, api_docs=opts.api_docs, max_body_bytes=opts.max_body_bytes)
        # this process's own liveness replaces the control API's constant /healthz
        self.app.router.routes = [r for r in self.app.router.routes if getattr(r, "path", None) != "/healthz"]
        self.app.add_api_route("/healthz", self._healthz, methods=["GET"], include_in_schema=False)
        self.app.add_api_route("/readyz", self._readyz, methods=["GET"], include_in_schema=False)
        self.app.add_api_route("/metrics", self._metrics, methods=["GET"], include_in_schema=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.failures = 0  # failed ticks in a row
        # the loop must complete its next tick (successful or not) before this monotonic time;
        # the first tick may also wait for start-up
        self._due = time.monotonic() + (cfg.liveness_intervals + 1) * cfg.planner.interval_s
        self.dependencies: dict[str, str | None] = {"prometheus": "not queried yet", "kubernetes": "not reached yet"}

    def limits(self) -> Limits:
        p, pools = self.policy.config, self.pools
        return Limits(max_replicas={pools.prefill: p.max_prefill, pools.decode: p.max_decode},
                      min_replicas={pools.prefill: p.min_prefill, pools.decode: p.min_decode},
                      gpu_budget=p.gpu_budget)

    def _metrics(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _healthz(self) -> JSONResponse:
        """Liveness: the planning loop is alive and completes ticks; failing ones count, since
        a failing dependency is what /readyz reports."""
        late = time.monotonic() - self._due
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return JSONResponse({"ok": False, "error": "the planning loop is not running"}, 503)
        if late > 0:
            return JSONResponse({"ok": False, "error": f"no planning tick completed for "
                                 f"{self.cfg.liveness_intervals} intervals (+{late:.1f} s)"}, 503)
        return JSONResponse({"ok": True})

    def _readyz(self) -> JSONResponse:
        """Readiness: the last tick reached both Prometheus and the Kubernetes API."""
        deps = {k: v or "ok" for k, v in self.dependencies.items()}
        ready = all(v is None for v in self.dependencies.values())
        return JSONResponse({"ready": ready, **deps}, 200 if ready else 503)

    def status(self) -> dict:
        last = self.loop.last
        return {
            "deployment": self.cfg.deployment.model_dump(),
            "last_decision": last.record.as_dict() if last else None,
            "forecast": (last.decision.details.as_dict() if last and last.decision else {}),
            "targets": last.record.targets if last else {},
            "held": last.held if last else {},
            "last_error": self.last_error,
            "dependencies": {k: v or "ok" for k, v in self.dependencies.items()},
            "profile_source": self.profile_source,
            "policy": (f"{self.policy_store.namespace}/{self.policy_store.name}" if self.policy_store else None),
        }

    def _sync_request_sla(self) -> None:
        """Take the SLA of the configured DynamoGraphDeploymentRequest whenever its generation
        changes (persisted, so a restart does not undo an SLA set through the API since)."""
        d = self.cfg.deployment
        if not d.request:
            return
        try:
            req = sla_request.read(self.api, d.namespace, d.request)
        except (sla_request.RequestSLAError, client.exceptions.ApiException) as exc:
            # planning goes on with the SLA in effect; say so once per distinct problem
            text = str(exc).splitlines()[0]
            if text != self._request_error:
                log.warning("SLA of the deployment request not taken", extra={"error": text})
            self._request_error = text
            return
        self._request_error = None
        if req is None or req.generation == self.control.state.sla_request_generation:
            return

        def take(state) -> None:
            state.sla, state.sla_request_generation = req.sla, req.generation

        try:
            detail = (f"SLA set to TTFT {req.sla.ttft_ms:g} ms, ITL {req.sla.itl_ms:g} ms "
                      f"from the deployment request (generation {req.generation})")
            self.control.change(Caller(f"DynamoGraphDeploymentRequest/{d.request}"), "SLAChanged", detail, take)
        except (NotPersisted, PolicyConflict) as exc:  # state untouched, retried next tick
            log.warning("SLA of the deployment request not saved", extra={"error": str(exc)})

    def _save_policy(self, before: ControlState, after: ControlState, caller: Caller) -> ControlState:
        return self.policy_store.save_change(before, after)

    def _refresh_policy(self) -> None:
        """Take the policy's spec as it is now (kubectl, GitOps and REST all write it)."""
        with self.control.lock:
            notes = self.policy_store.refresh(self.control.state)
        for note in set(notes) - self._policy_notes:  # once per note, not per tick
            log.info("planning policy", extra={"note": note})
        self._policy_notes = set(notes)

    def _write_policy_status(self) -> None:
        """The last decision and the conditions into the policy's status (throttled by the store)."""
        last, st = self.loop.last, self.control.state
        conds: list[tuple[str, bool, str, str]] = []
        status: dict = {}
        if last is not None:
            rec, pools = last.record, self.pools
            status = {
                "forecast": {k: float(v) for k, v in (last.decision.details.as_dict() if last.decision else {}).items()},
                "plan": dict(rec.targets), "current": dict(last.current),
                "roles": {role: {"pool": svc, "current": last.current.get(svc, 0), "desired": rec.targets.get(svc, 0)}
                          for role, svc in (("prefill", pools.prefill), ("decode", pools.decode))},
                "reasons": [r[:2048] for r in rec.reason.split("; ")][:32],
                "lastDecision": {"time": rec.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "outcome": rec.outcome.value, "applied": rec.applied, "mode": last.mode,
                                 "reason": rec.reason[:4096]},
            }
            held = "; ".join(f"{svc}: {why}" for svc, why in sorted(last.held.items()))
            conds.append(("HeldOnMissingData", bool(last.held), "MissingData" if last.held else "DataPresent",
                          held or "every input of the decision was observed"))
            blocked = "; ".join(f"{svc}: {why}" for svc, why in sorted(last.blocked.items()))
            conds.append(("ConflictingScaler", bool(last.blocked), "OtherScaler" if last.blocked else "NoConflict",
                          blocked or "no other scaler targets the planned pools"))
            limited = last.decision is not None and last.decision.details.budget_limited
            conds.append(("BudgetLimited", limited, "GPUBudget" if limited else "WithinBudget",
                          f"the plan was cut to the GPU budget of {self.policy.config.gpu_budget}" if limited
                          else "the plan fits the GPU budget"))
        if self.last_error:
            planning = (False, "TickFailed", self.last_error)
        elif st.paused:
            planning = (False, "Paused", "the policy's mode is paused: decisions are computed, nothing is written")
        elif last is None:
            planning = (False, "Starting", "no decision yet")
        elif last.mode == "deployment not ready":
            planning = (False, "DeploymentNotReady", "the DynamoGraphDeployment is not Ready")
        elif st.advisory:
            planning = (True, "Advisory", "planning; replicas are recommended, not written")
        else:
            planning = (True, "Active", "planning and writing replicas")
        conds.insert(0, ("Planning", *planning))
        try:
            self.policy_store.write_status(status, conds)
        except Exception as exc:  # noqa: BLE001  a report: it must never fail planning
            log.warning("policy status not written", extra={"error": str(exc)[:300]})

    def _apply_sla(self) -> None:
        # the SLA set through the API drives the decision logic
        sla = self.control.state.sla
        self.policy.config = self.policy.config.model_copy(update={"ttft_ms": sla.ttft_ms, "itl_ms": sla.itl_ms,
                                                                  "attainment_target": sla.attainment_target})

    def run_once(self) -> None:
        """One isolated tick: whatever fails is logged, counted and retried after a back-off;
        nothing a tick raises ends the loop."""
        try:
            if self.policy_store:
                self._refresh_policy()
            self._sync_request_sla()
            self._apply_sla()
            self.metrics.record(self.loop.tick())
            self.last_error, self.failures = None, 0
            self.dependencies["kubernetes"] = None
        except Exception as exc:
            self.failures += 1
            kind = type(exc).__name__
            self.metrics.errors.inc()
            self.metrics.tick_errors.labels(kind).inc()
            self.last_error = f"{kind}: {exc}"[:500]
            if _unreachable(exc):
                self.dependencies["kubernetes"] = self.last_error
            else:
                self.dependencies["kubernetes"] = None
            log.warning("planning tick failed", exc_info=True,
                        extra={"error": self.last_error, "failures_in_a_row": self.failures})
        self.dependencies["prometheus"] = self.observer.prom_error if self.observer.prom_error is None \
            else f"Prometheus error: {self.observer.prom_error}"
        for dep, err in self.dependencies.items():
            self.metrics.dependency_up.labels(dep).set(0 if err else 1)
        if self.policy_store:
            self._write_policy_status()

    def run_loop(self) -> None:
        interval = self.cfg.planner.interval_s
        while not self._stop.is_set():
            self.run_once()
            wait = backoff_s(interval, self.failures)
            self._due = time.monotonic() + wait + self.cfg.liveness_intervals * interval
            self._stop.wait(wait)

    def serve(self) -> None:
        o = self.opts
        cert = None if o.insecure_http else ServingCert(o.tls_cert_file, o.tls_key_file, list(o.tls_sans),
                                                        cn="dynamo-scaling-planner")
        config = uvicorn.Config(self.app, host=o.bind_address, port=o.api_port, log_level="warning")
        config.load()
        if cert is not None:
            config.ssl = cert.server_context(None)
            if not cert.generated:  # follow renewals of the given files (cert-manager)
                cert.follow_in_thread(self._stop)
        thread = self._thread = threading.Thread(target=self.run_loop, name="planner-loop", daemon=True)
        thread.start()
        log.info("planner API listening", extra={"bind": o.bind_address, "port": o.api_port,
                                                  "scheme": "http" if cert is None else "https",
                                                  "self_signed": bool(cert and cert.generated)})
        try:
            uvicorn.Server(config).run()
        finally:
            self._stop.set()
            thread.join(5)
            if cert is not None:
                cert.close()


def read_token_file(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path}: empty token file")
    return token
