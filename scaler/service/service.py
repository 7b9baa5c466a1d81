"""The planner as a process: the planning loop in a thread, the control API and /metrics over
HTTPS (127.0.0.1 unless told otherwise; plain HTTP only when asked for), overrides restored from
the cluster at start."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi.responses import JSONResponse, Response
from kubernetes import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from external_metrics.prom import PrometheusClient
from external_metrics.tls import ServingCert
from scaler.control.api import MAX_BODY_BYTES, create_app, create_fleet_app
from scaler.control.auth import Authorizer
from scaler.profile import planner_profile
from scaler.service.config import ServiceConfig
from scaler.service.deployment import DeploymentPlanner
from scaler.service.fleet import (
    FleetPlanner,
    PerDeployment,
    process_only,
    rest_listing,
    rest_target,
)
from scaler.service.leadership import Leadership
from scaler.service.metrics import PlannerMetrics
from scaler.whatif import api as whatif_api

log = logging.getLogger(__name__)


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
    """The process: HTTP server, /healthz, /readyz, /metrics and the tick loop thread, over the
    DeploymentPlanners it plans (one in single-DGD mode)."""

    def __init__(self, cfg: ServiceConfig, api: client.ApiClient, opts: Options,
                 authorizer: Authorizer | Callable[[str, str], Authorizer],
                 leadership: Leadership | None = None) -> None:
        self.cfg, self.opts, self.api = cfg, opts, api
        # with leader election only the lease holder plans and writes; every replica serves the API
        self.leadership = leadership or Leadership()
        profile, self.profile_source = planner_profile(cfg.profile_file)
        self.metrics = PlannerMetrics()
        self.metrics.profile_source.labels(self.profile_source).set(1)
        self.leadership.export(self.metrics.registry)
        prom = PrometheusClient(opts.prometheus_url, connection=cfg.prometheus)
        # fleet mode (cfg.fleet): the planners come and go with the policies (scaler/service/fleet.py)
        self.fleet: FleetPlanner | None = None
        self.deployments: list[DeploymentPlanner] = [] if cfg.fleet else [
            DeploymentPlanner(cfg, api, prom, profile, self.profile_source, self.metrics, advisory=opts.advisory,
                              leadership=self.leadership)]
        guards = PerDeployment(authorizer)
        if cfg.fleet:
            def make(dcfg: ServiceConfig, store) -> DeploymentPlanner:
                # each DGD its own metrics, served with namespace and dgd labels
                return DeploymentPlanner(dcfg, api, prom, profile, self.profile_source, PlannerMetrics(),
                                         advisory=opts.advisory, policy_store=store, leadership=self.leadership)

            process_only(self.metrics)
            self.fleet = FleetPlanner(cfg, api, make, self.deployments, self.metrics.registry)
            self.fleet.may_write = self.leadership.is_leader  # a standby lists policies but reports nothing
            self.app = create_fleet_app(rest_target(self.fleet, guards), rest_listing(self.fleet, guards), guards,
                                        max_body_bytes=opts.max_body_bytes)
        else:
            self.app = create_app(self.deployments[0].control, authorizer, api_docs=opts.api_docs,
                                  max_body_bytes=opts.max_body_bytes)
        # this process's own liveness replaces the control API's constant /healthz
        self.app.router.routes = [r for r in self.app.router.routes if getattr(r, "path", None) != "/healthz"]
        self.app.add_api_route("/healthz", self._healthz, methods=["GET"], include_in_schema=False)
        self.app.add_api_route("/readyz", self._readyz, methods=["GET"], include_in_schema=False)
        self.app.add_api_route("/metrics", self._metrics, methods=["GET"], include_in_schema=False)
        # POST /v1/what-if; in fleet mode POST /v1/deployments/{namespace}/{name}/what-if
        whatif_api.register(self.app, guards if self.fleet else authorizer, lambda: self.deployments,
                            lookup=(lambda ns, name: (guards(ns, name), self.fleet.find(ns, name))) if self.fleet
                            else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._standby_resync_at = 0.0  # fleet mode: when a standby next re-reads the policy list
        # the loop must complete its next tick (successful or not) before this monotonic time;
        # the first tick may also wait for start-up
        self._due = time.monotonic() + (cfg.liveness_intervals + 1) * cfg.planner.interval_s
        self.dependencies: dict[str, str | None] = {"prometheus": "not queried yet", "kubernetes": "not reached yet"}

    # single-DGD mode: the one deployment's parts, under the names they had on the service
    @property
    def single(self) -> DeploymentPlanner:
        return self.deployments[0]

    loop = property(lambda self: self.single.loop)
    control = property(lambda self: self.single.control)
    policy = property(lambda self: self.single.policy)
    policy_store = property(lambda self: self.single.policy_store)
    store = property(lambda self: self.single.store)
    observer = property(lambda self: self.single.observer)
    pools = property(lambda self: self.single.pools)
    last_error = property(lambda self: self.single.last_error)

    @property
    def failures(self) -> int:
        """Failed ticks in a row; with many DGDs, the least of them: the loop backs off only
        when every DGD fails (an outage), never because of one."""
        return min((d.failures for d in self.deployments), default=0)

    def status(self) -> dict:
        return self.single.status()

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
        """Readiness: the last tick reached both Prometheus and the Kubernetes API; on a standby,
        which plans nothing, its last lease request reached the Kubernetes API."""
        if not self.leadership.is_leader():
            err = self.leadership.reachable()
            return JSONResponse({"ready": err is None, "leader": False, "kubernetes": err or "ok"}, 503 if err else 200)
        deps = {k: v or "ok" for k, v in self.dependencies.items()}
        ready = all(v is None for v in self.dependencies.values())
        return JSONResponse({"ready": ready, **deps}, 200 if ready else 503)

    def _gather_dependencies(self) -> None:
        """The process's dependencies from its deployments' last ticks: a dependency is down when
        it failed for one of them (with many DGDs, reachable for one is reachable)."""
        for dep in self.dependencies:
            errs = [d.dependencies[dep] for d in self.deployments]
            ok = [e for e in errs if e is None]
            self.dependencies[dep] = None if ok or not errs else errs[0]
        if self.fleet and len(self.fleet.list_errors) == len(self.fleet.fleet.namespaces):
            self.dependencies["kubernetes"] = next(iter(self.fleet.list_errors.values()))
        for dep, err in self.dependencies.items():
            self.metrics.dependency_up.labels(dep).set(0 if err else 1)

    def run_once(self) -> None:
        """One isolated tick: whatever fails is logged, counted and retried after a back-off;
        nothing a tick raises ends the loop."""
        if self.fleet is not None:
            self.fleet.round()
        else:
            for d in self.deployments:
                d.run_once()
        self._gather_dependencies()
        for d in self.deployments:
            if self.leadership.is_leader():  # a replica that lost the lease since leaves the status alone
                d.write_policy_status(self.fleet.conditions.get(FleetPlanner.key_of(d), []) if self.fleet else ())

    def run_loop(self) -> None:
        interval = self.cfg.planner.interval_s
        while not self._stop.is_set():
            if self.leadership.became_leader():
                # a new leader plans from the cluster's state: each tick re-reads replicas and policy
                log.info("leading: planning starts", extra=self.leadership.status())
            if self.leadership.is_leader():
                self.run_once()
                wait = backoff_s(interval, self.failures)
            else:  # standby: plan nothing, write nothing; stay live for the takeover
                self._follow()
                wait = interval
            self._due = time.monotonic() + wait + self.cfg.liveness_intervals * interval
            self._stop.wait(wait)

    def _follow(self) -> None:
        """A standby writes nothing but keeps what its API shows as the leader sees it: in fleet
        mode its list of planned DGDs (every resync_s), and each DGD's policy every interval
        (read only: expired pins stay in the policy for the leader to remove)."""
        if self.fleet is not None and time.monotonic() >= self._standby_resync_at:
            try:
                self.fleet.resync()
            except Exception:  # retried at the next resync; the standby stays up
                log.warning("policies not re-read on the standby", exc_info=True)
            self._standby_resync_at = time.monotonic() + self.fleet.fleet.resync_s
        for d in list(self.deployments):
            d.follow()

    def stop_planning(self, join_s: float = 5.0) -> None:
        """Stop the planning loop; once it has stopped, give the lease up (client-go's
        ReleaseOnCancel) so a standby takes over at its next retry, not after the whole lease. A
        loop still running keeps the lease to expire: releasing it then could let two write."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(join_s)
            if thread.is_alive():
                log.warning("the planning loop did not stop in time; the lease is left to expire")
                return
        if self.leadership.elector is not None:
            self.leadership.elector.release()

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
            _Server(config, self.stop_planning).run()
        finally:
            self.stop_planning()
            if cert is not None:
                cert.close()


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM once it has shut down, which ends the process before any
    `finally` of the caller: so planning stops and the lease is released within its shutdown."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_shutdown = on_shutdown

    async def shutdown(self, sockets=None) -> None:
        await super().shutdown(sockets=sockets)
        await asyncio.to_thread(self.on_shutdown)


def read_token_file(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path}: empty token file")
    return token
