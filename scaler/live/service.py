"""The planner as a process: the planning loop in a thread, the control API and /metrics over
HTTP (127.0.0.1 unless told otherwise), overrides restored from the cluster at start."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import HTTPException
from fastapi.responses import Response
from kubernetes import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapter.scale_client import ScaleClient
from scaler.control.api import ControlService, create_app
from scaler.control.audit import Audit
from scaler.control.auth import Authorizer, Caller
from scaler.control.state import SLATargets
from scaler.control.store import ConfigMapStore
from scaler.live.actuate import ScaleActuator
from scaler.live.config import ServiceConfig
from scaler.live.loop import PlannerLoop, PoolServices
from scaler.live import sla_request
from scaler.live.metrics import PlannerMetrics
from external_metrics.prom import PrometheusClient
from scaler.live.observe import LiveObserver, ObservationError
from scaler.planner.predictive import PredictivePlanner
from scaler.profile import PerformanceProfile, bundled_profile

log = logging.getLogger(__name__)


@dataclass
class Options:
    prometheus_url: str
    api_port: int = 8085
    bind_address: str = "127.0.0.1"
    advisory: bool = False


class PlannerService:
    def __init__(self, cfg: ServiceConfig, api: client.ApiClient, opts: Options, authorizer: Authorizer) -> None:
        self.cfg, self.opts, self.api = cfg, opts, api
        self._request_error: str | None = None
        d = cfg.deployment
        profile = PerformanceProfile.load(cfg.profile_file) if cfg.profile_file else bundled_profile()
        self.store = ConfigMapStore(api, d.namespace, cfg.configmap)
        state = self.store.load(SLATargets(ttft_ms=cfg.planner.ttft_ms, itl_ms=cfg.planner.itl_ms))
        if opts.advisory:
            state.advisory = True
        self.pools = PoolServices(d.prefill_service, d.decode_service)
        self.policy = PredictivePlanner(profile, cfg.planner)
        self.metrics = PlannerMetrics()
        audit = Audit(api, d.namespace, {"api_version": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                                         "name": d.name})
        self.control = ControlService(state, self.store.save, audit, self.status, services=self.pools.names)
        self.loop = PlannerLoop(self.policy, LiveObserver(cfg, api, PrometheusClient(opts.prometheus_url)),
                                ScaleActuator(ScaleClient(api, d.namespace), d.name), self.control, self.pools)
        self.app = create_app(self.control, authorizer)
        self.app.add_api_route("/metrics", self._metrics, methods=["GET"], include_in_schema=False)
        self._stop = threading.Event()
        self.last_error: str | None = None

    def _metrics(self) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def status(self) -> dict:
        last = self.loop.last
        return {
            "deployment": self.cfg.deployment.model_dump(),
            "last_decision": last.record.as_dict() if last else None,
            "forecast": (last.decision.details if last and last.decision else {}),
            "targets": last.record.targets if last else {},
            "last_error": self.last_error,
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
        except HTTPException as exc:  # could not persist: state untouched, retried next tick
            log.warning("SLA of the deployment request not saved", extra={"error": exc.detail})

    def _apply_sla(self) -> None:
        # the SLA set through the API drives the decision logic
        sla = self.control.state.sla
        self.policy.config = self.policy.config.model_copy(update={"ttft_ms": sla.ttft_ms, "itl_ms": sla.itl_ms})

    def run_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_request_sla()
                self._apply_sla()
                self.metrics.record(self.loop.tick())
                self.last_error = None
            except (ObservationError, client.exceptions.ApiException, OSError) as exc:
                self.metrics.errors.inc()
                self.last_error = str(exc)[:500]
                log.warning("planning tick skipped", extra={"error": self.last_error})
            self._stop.wait(self.cfg.planner.interval_s)

    def serve(self) -> None:
        thread = threading.Thread(target=self.run_loop, name="planner-loop", daemon=True)
        thread.start()
        server = uvicorn.Server(uvicorn.Config(self.app, host=self.opts.bind_address, port=self.opts.api_port,
                                               log_level="warning"))
        try:
            server.run()
        finally:
            self._stop.set()
            thread.join(5)


def read_token_file(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path}: empty token file")
    return token
