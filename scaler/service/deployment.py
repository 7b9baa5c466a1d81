"""Everything the planner does for one DynamoGraphDeployment: its operator state (policy or
ConfigMap), control service, observer, planning loop and policy status. The process shell
(scaler/service/service.py) holds one of these per planned DGD."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import urllib3
from kubernetes import client

from adapter.scale_client import ScaleClient
from external_metrics.prom import PrometheusClient
from scaler.control.api import ControlService, Limits, NotPersisted
from scaler.control.audit import Audit
from scaler.control.auth import Caller
from scaler.control.policy import PolicyConflict, PolicyStore
from scaler.control.state import ControlState, SLATargets
from scaler.control.store import ConfigMapStore
from scaler.planner.predictive import PredictivePlanner
from scaler.service import sla_request
from scaler.service.actuate import ScaleActuator
from scaler.service.capacity import condition_message
from scaler.service.config import ServiceConfig
from scaler.service.histograms import measured_attainment
from scaler.service.leadership import GuardedScaleClient, Leadership, SharedConfigMap
from scaler.service.loop import PlannerLoop, PoolServices, TickResult
from scaler.service.metrics import PlannerMetrics
from scaler.service.observe import LiveObserver

log = logging.getLogger(__name__)


def unreachable(exc: BaseException) -> bool:
    """The API server could not be reached or failed, as opposed to answering with an error."""
    if isinstance(exc, client.exceptions.ApiException):
        return not exc.status or exc.status >= 500
    return isinstance(exc, (urllib3.exceptions.HTTPError, OSError))


class DeploymentPlanner:
    """One DGD: `cfg.deployment` names it and its pools; `policy_store` is given by a caller that
    already holds the DGD's policy (fleet mode), else found or created here."""

    def __init__(self, cfg: ServiceConfig, api: client.ApiClient, prom: PrometheusClient, profile,
                 profile_source: str, metrics: PlannerMetrics, advisory: bool = False,
                 policy_store: PolicyStore | None = None,
                 leadership: Leadership | None = None) -> None:
        self.cfg, self.api, self.metrics, self.profile_source = cfg, api, metrics, profile_source
        self.leadership = leadership or Leadership()
        self._request_error: str | None = None
        self._follow_error: str | None = None  # a standby's last failed re-read, logged once
        d = cfg.deployment
        self.store = ConfigMapStore(api, d.namespace, cfg.configmap)
        default_sla = SLATargets(ttft_ms=cfg.planner.ttft_ms, itl_ms=cfg.planner.itl_ms,
                                 attainment_target=cfg.planner.attainment_target)
        # operator state lives in the DGD's DynamoScalingPolicy where the CRD is installed; the
        # ConfigMap only where it is not (docs/policy.md)
        self.policy_store: PolicyStore | None = policy_store
        self._policy_notes: set[str] = set()
        if policy_store is None and PolicyStore.served(api):
            self.policy_store = PolicyStore(api, d.namespace, d.name)
        if self.policy_store is not None:
            # --advisory is the mode of a policy the planner creates; an existing policy's mode rules
            state = self.policy_store.load(ControlState(sla=default_sla, advisory=advisory), configmap=self.store)
        else:
            state = self.store.load(default_sla)
            if advisory:
                state.advisory = True
        self.pools = PoolServices(d.prefill_service, d.decode_service)
        self.policy = PredictivePlanner(profile, cfg.planner)
        audit = Audit(api, d.namespace, {"api_version": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                                         "name": d.name})
        # one of several replicas: they share the ConfigMap, so changes are merged into it (leadership.py)
        self.shared_state = (SharedConfigMap(self.store, default_sla)
                             if leadership is not None and leadership.enabled and not self.policy_store else None)
        save_change = self._save_policy if self.policy_store else self.shared_state.save_change \
            if self.shared_state else None
        self.control = ControlService(state, None if save_change else self.store.save, audit, self.status,
                                      services=self.pools.names, limits=self.limits,
                                      save_change=save_change)
        self.observer = LiveObserver(cfg, api, prom)
        # each window's requests are counted against the SLA in effect; prompts beyond reach by the profile
        self.observer.sla = lambda: (self.policy.config.ttft_ms, self.policy.config.itl_ms)
        self.observer.unloaded_ttft_ms = self.unloaded_ttft_ms()
        self.loop = PlannerLoop(self.policy, self.observer,
                                ScaleActuator(ScaleClient(api, d.namespace), d.name), self.control, self.pools)
        self.loop.dgd = f"{d.namespace}/{d.name}"
        if leadership is not None and leadership.enabled:
            # /scale writes become compare-and-swaps on what the observer read, under the lease
            self.observer.scale = GuardedScaleClient(api, d.namespace, leadership.guard)
            self.loop.actuator = ScaleActuator(self.observer.scale, d.name)
        self.last_error: str | None = None
        self.failures = 0  # failed ticks in a row
        # set (fleet mode): the policy status is written when more than the decision's numbers,
        # reasons and time changed, else at most this often
        self.status_every_s: float | None = None
        self._status_sig: str | None = None
        self._status_at = 0.0
        self.dependencies: dict[str, str | None] = {"prometheus": "not queried yet", "kubernetes": "not reached yet"}

    @property
    def namespace(self) -> str:
        return self.cfg.deployment.namespace

    @property
    def name(self) -> str:
        return self.cfg.deployment.name

    def limits(self) -> Limits:
        p, pools = self.policy.config, self.pools
        return Limits(max_replicas={pools.prefill: p.max_prefill, pools.decode: p.max_decode},
                      min_replicas={pools.prefill: p.min_prefill, pools.decode: p.min_decode},
                      gpu_budget=p.gpu_budget)

    def unloaded_ttft_ms(self):
        """The idle TTFT by prompt length the SLA counts tell unreachable prompts by: the
        profile's, or the online fit's once trusted; None (no unreachable count) until then."""
        profile = self.policy.profile  # the fit's profile, replaced each decision, once trusted
        return profile.prefill.ttft_ms_at if profile is not None else None

    def profile_fit(self) -> dict | None:
        """The online fit's state (None when the planner sizes from a given profile)."""
        if self.policy.fit is None:
            return None
        st = self.policy.fit_status  # the last decision's snapshot: never mid-update
        if st is None:
            return {"windows": 0, "trusted": False, "kv_capacity_tokens": None,
                    "prefill_tokens_per_s": None, "throughput_from": "none", "idle_ttft_ms": None,
                    "waiting_for": ["a first decision"]}
        return {"windows": st.windows, "trusted": st.trusted, "kv_capacity_tokens": st.kv_capacity,
                "prefill_tokens_per_s": st.prefill_throughput, "throughput_from": st.throughput_from,
                "waiting_for": list(st.waiting_for),
                # ttft_ms = a + b * isl on an idle worker
                "idle_ttft_ms": ({"a": st.prefill.coef[0], "b_per_token": st.prefill.coef[1]}
                                 if st.prefill is not None else None)}

    def status(self) -> dict:
        last = self.loop.last
        return {
            "deployment": self.cfg.deployment.model_dump(),
            "last_decision": last.record.as_dict() if last else None,
            "forecast": (last.decision.details.as_dict() if last and last.decision else {}),
            "targets": last.record.targets if last else {},
            "held": last.held if last else {},
            "measured_attainment": measured_attainment(last.slo if last else None),
            "last_error": self.last_error,
            "dependencies": {k: v or "ok" for k, v in self.dependencies.items()},
            "profile_source": self.profile_source,
            "profile_fit": self.profile_fit(),
            "policy": (f"{self.policy_store.namespace}/{self.policy_store.name}" if self.policy_store else None),
            **self.leadership.status(),
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

    def _refresh_policy(self, read_only: bool = False) -> None:
        """Take the policy's spec as it is now (kubectl, GitOps and REST all write it); a
        standby reads it only (`read_only`), leaving expired pins for the leader to remove."""
        with self.control.lock:
            store = self.policy_store
            notes = store.follow(self.control.state) if read_only else store.refresh(self.control.state)
        for note in set(notes) - self._policy_notes:  # once per note, not per tick
            log.info("planning policy", extra={"note": note, "dgd": f"{self.namespace}/{self.name}"})
        self._policy_notes = set(notes)

    def write_policy_status(self, extra: list[tuple[str, bool, str, str]] = ()) -> None:
        """The last decision and the conditions into the policy's status (throttled by the store);
        `extra` conditions come from the process (e.g. the fleet's budget round)."""
        if self.policy_store is None:
            return
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
            short = last.unschedulable
            conds.append(("InsufficientCapacity", bool(short), "PodsUnschedulable" if short else "Schedulable",
                          condition_message(short) if short else "no pod of the planned pools is unschedulable"))
            if not any(c[0] == "BudgetLimited" for c in extra):
                limited = last.decision is not None and last.decision.details.budget_limited
                conds.append(("BudgetLimited", limited, "GPUBudget" if limited else "WithinBudget",
                              f"the plan was cut to the GPU budget of {self.policy.config.gpu_budget}" if limited
                              else "the plan fits the GPU budget"))
        conds += list(extra)
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
        sig = json.dumps([{k: status.get(k) for k in ("plan", "current", "roles")},
                          {k: v for k, v in status.get("lastDecision", {}).items() if k not in ("time", "reason")},
                          conds], sort_keys=True)
        if (self.status_every_s is not None and sig == self._status_sig
                and time.monotonic() - self._status_at < self.status_every_s):
            return
        try:
            if self.policy_store.write_status(status, conds):
                self._status_sig, self._status_at = sig, time.monotonic()
        except Exception as exc:  # noqa: BLE001  a report: it must never fail planning
            log.warning("policy status not written", extra={"error": str(exc)[:300]})

    def _apply_sla(self) -> None:
        # the SLA set through the API drives the decision logic
        sla = self.control.state.sla
        self.policy.config = self.policy.config.model_copy(update={"ttft_ms": sla.ttft_ms, "itl_ms": sla.itl_ms,
                                                                  "attainment_target": sla.attainment_target})

    def prepare(self) -> None:
        """What each tick does before deciding: the operator's current intent."""
        if self.policy_store:
            self._refresh_policy()
        elif self.shared_state:  # another replica may have changed it through its API
            with self.control.lock:
                self.shared_state.refresh(self.control.state)
        self._sync_request_sla()
        self._apply_sla()
        self.observer.unloaded_ttft_ms = self.unloaded_ttft_ms()

    def follow(self) -> None:
        """What a standby does each interval: take the operator's current intent into what its
        API shows (status, overrides, what-if), writing nothing: no expired pin removed, no SLA
        taken from the deployment request; the leader does both."""
        try:
            if self.policy_store:
                self._refresh_policy(read_only=True)
            elif self.shared_state:
                with self.control.lock:
                    self.shared_state.refresh(self.control.state)
            self._apply_sla()
        except Exception as exc:  # noqa: BLE001  retried next interval; the standby stays up
            text = f"{type(exc).__name__}: {exc}"[:300]
            if text != self._follow_error:
                log.warning("policy not re-read on the standby", extra={"error": text,
                                                                        "dgd": f"{self.namespace}/{self.name}"})
            self._follow_error = text
            return
        self._follow_error = None

    def succeeded(self, res: TickResult) -> None:
        self.metrics.record(res)
        self.last_error, self.failures = None, 0
        self.dependencies["kubernetes"] = None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        kind = type(exc).__name__
        self.metrics.errors.inc()
        self.metrics.tick_errors.labels(kind).inc()
        self.last_error = f"{kind}: {exc}"[:500]
        self.dependencies["kubernetes"] = self.last_error if unreachable(exc) else None
        log.warning("planning tick failed", exc_info=exc,
                    extra={"error": self.last_error, "failures_in_a_row": self.failures,
                           "dgd": f"{self.namespace}/{self.name}"})

    def observed_prometheus(self) -> None:
        err = self.observer.prom_error
        self.dependencies["prometheus"] = None if err is None else f"Prometheus error: {err}"

    def run_once(self) -> None:
        """One isolated tick: whatever fails is logged and counted; nothing a tick raises leaves here."""
        try:
            self.prepare()
            self.succeeded(self.loop.tick())
        except Exception as exc:  # noqa: BLE001  one failed tick must not end the loop
            self.failed(exc)
        self.observed_prometheus()
