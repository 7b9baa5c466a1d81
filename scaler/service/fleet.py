"""Fleet mode: one planner process for every DynamoScalingPolicy in a set of namespaces.

Every `resync_s` the policies are listed; each one whose DGD and pools resolve gets a
DeploymentPlanner, one that is deleted loses it, one that does not resolve gets `Planning=False`
naming what is missing. Each interval is a round: every DGD is observed and decided on its own
(one DGD's failure is its own) from the round's shared reads (`RoundReads`: one LIST per
namespace and kind, one Prometheus query per namespace and signal), then, with a `gpu_budget`,
the plans are cut by the allocator of scaler/planner/fleet.py (by spec.priority, never below a
pool's minimum or a pin) and an increase is admitted only into GPUs no pod holds now, then
written. docs/fleet.md describes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import HTTPException, Path
from kubernetes import client
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from adapter.models import DGD, parse_dgd
from adapter.scale_client import ScaleClient
from scaler.control.api import Target
from scaler.control.auth import READ, AuthError, Authorizer, Caller
from scaler.control.policy import KIND, PolicySpec, PolicyStore, Roles
from scaler.planner.fleet import Allocation, DeploymentPlan, Holding, admit, allocate
from scaler.service.capacity import PodState
from scaler.service.config import NAME, DeploymentRef, ServiceConfig
from scaler.service.deployment import DeploymentPlanner
from scaler.service.loop import Plan
from scaler.service.metrics import PlannerMetrics
from scaler.service.observe import RoundReads, pod_state

log = logging.getLogger(__name__)

ROLES = ("prefill", "decode")
# process-wide series: not repeated per DGD
PROCESS_FAMILIES = {"dynamo_planner_profile_info", "dynamo_planner_dependency_up", "dynamo_planner_leader"}


class Unresolved(Exception):
    """A policy that cannot be planned: `reason` is the condition's reason, the message says what is missing."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Pools:
    prefill: str
    decode: str
    frontend: str | None = None


def resolve_pools(dgd: DGD, roles: Roles | None, where: str) -> Pools:
    """The DGD's pools: spec.roles where given, else the one service whose subComponentType is
    the role (frontend: componentType frontend), else the service named after the role."""
    services = dgd.spec.services
    known = ", ".join(sorted(services)) or "none"

    def find(role: str) -> str | None:
        given = getattr(roles, role) if roles else None
        if given is not None:
            if given not in services:
                raise Unresolved("PoolNotFound", f"spec.roles.{role} names service {given!r}, which "
                                                 f"DynamoGraphDeployment {where} does not have (services: {known})")
            return given
        if role == "frontend":
            found = sorted(n for n, s in services.items() if (s.component_type or "").lower() == "frontend")
            what = "componentType frontend"
        else:
            found = sorted(n for n, s in services.items() if (s.sub_component_type or "").lower() == role)
            what = f"subComponentType {role}"
        if len(found) > 1:
            raise Unresolved("PoolAmbiguous", f"services {', '.join(found)} of DynamoGraphDeployment {where} all "
                                              f"have {what}; name the {role} pool in spec.roles.{role}")
        if found:
            return found[0]
        if role in services:
            return role
        if role == "frontend":
            return None  # optional: only for its metrics
        raise Unresolved("PoolNotFound", f"no {role} pool in DynamoGraphDeployment {where}: no service has {what} "
                                         f"or is named {role!r}, and spec.roles.{role} is not set (services: {known})")

    pools = Pools(find("prefill"), find("decode"), find("frontend"))
    if pools.prefill == pools.decode:
        raise Unresolved("PoolAmbiguous", f"service {pools.prefill!r} of DynamoGraphDeployment {where} is both the "
                                          "prefill and the decode pool; set spec.roles")
    return pools


# ---- the round's budget step (pure)

@dataclass(frozen=True)
class Member:
    """One DGD in a budget round: its targets after overrides, the floors the budget may not cut
    (pool minimums, pins, pools it may not change) and what one replica of each pool costs."""

    key: str
    prefill: str
    decode: str
    targets: dict[str, int]
    floors: dict[str, int]
    priority: int = 0
    gpus: dict[str, int] | None = None  # GPUs per replica per pool (1 when unknown)

    def plan(self) -> DeploymentPlan:
        g = self.gpus or {}
        t = self.targets
        return DeploymentPlan(self.key, t[self.prefill], t[self.decode],
                              min_prefill=min(self.floors.get(self.prefill, 0), t[self.prefill]),
                              min_decode=min(self.floors.get(self.decode, 0), t[self.decode]),
                              priority=self.priority, gpus_per_prefill=g.get(self.prefill, 1),
                              gpus_per_decode=g.get(self.decode, 1))


Condition = tuple[str, bool, str, str]


def budget_round(members: list[Member], budget: int, previous: Allocation | None = None,
                 held: Mapping[str, Holding] | None = None
                 ) -> tuple[Allocation, dict[str, dict[str, int]], dict[str, Condition]]:
    """Cut the members' targets to `budget` GPUs: the allocation, the new targets per member and
    each member's BudgetLimited condition. Without a previous allocation (a planner's first round,
    a standby that just took the lease) what the members hold is what stays sticky: a new leader
    must not reshuffle a DGD's GPUs between its pools."""
    if previous is None and held is not None:
        previous = {k: (h.prefill, h.decode) for k, h in held.items()}
    alloc = allocate([m.plan() for m in members], budget, previous)
    targets: dict[str, dict[str, int]] = {}
    conds: dict[str, Condition] = {}
    for m in members:
        g = alloc[m.key]
        targets[m.key] = {m.prefill: g.prefill, m.decode: g.decode}
        if g.limited:
            cut = ", ".join(f"{svc} {m.targets[svc]} -> {n}" for svc, n in targets[m.key].items() if n < m.targets[svc])
            extra = ("; the pool minimums alone are over the budget" if alloc.minimums_over_budget else "")
            conds[m.key] = ("BudgetLimited", True, "FleetGPUBudget",
                            (f"the fleet's GPU budget of {budget} GPUs granted {g.gpus} of the {g.wanted_gpus} GPUs "
                             f"planned (priority {m.priority}): {cut or 'no pool raised'}{extra}"))
        else:
            conds[m.key] = ("BudgetLimited", False, "WithinBudget",
                            f"the plan ({g.gpus} GPUs) fits the fleet's GPU budget of {budget} GPUs")
    return alloc, targets, conds


def holding(m: Member, current: dict[str, int], pods: list[PodState]) -> Holding:
    """The GPUs a member holds now, per pool in replicas: running is what its adapter asks for or
    the pods that are there, whichever is more (pods not created yet will be; pods beyond the
    request are still there), draining its pods being deleted. Finished pods hold nothing."""
    def count(svc: str, deleting: bool) -> int:
        return sum(1 for p in pods if p.service == svc and p.deleting == deleting
                   and p.phase not in ("Succeeded", "Failed"))
    return Holding(prefill=max(current.get(m.prefill, 0), count(m.prefill, False)),
                   decode=max(current.get(m.decode, 0), count(m.decode, False)),
                   prefill_draining=count(m.prefill, True), decode_draining=count(m.decode, True))


def admit_round(members: list[Member], alloc: Allocation, held: dict[str, Holding], budget: int
                ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """The targets to write now: the grants, but an increase only into GPUs free now (budget
    minus every pod that exists, draining ones included, higher priority first), so a cut DGD's
    workers finish draining before another DGD's start on their GPUs. With the reasons per member
    for a raise that waits."""
    plans = [m.plan() for m in members]
    now = admit(plans, alloc, held, budget)
    targets: dict[str, dict[str, int]] = {}
    notes: dict[str, list[str]] = {}
    for m in members:
        g, (pre, dec) = alloc[m.key], now[m.key]
        targets[m.key] = {m.prefill: pre, m.decode: dec}
        for svc, granted, n in ((m.prefill, g.prefill, pre), (m.decode, g.decode, dec)):
            if n < granted:
                notes.setdefault(m.key, []).append(
                    f"{svc} raised to {n}, not yet to the {granted} granted: the fleet's GPU budget of {budget} "
                    "GPUs is held by pods that still run, start or drain")
    return targets, notes


class ListedPolicyStore(PolicyStore):
    """A fleet DGD's policy: the round's policy refresh takes the object from the round's LIST
    of the namespace (`listed`, used once) instead of a GET; every other read is a GET."""

    listed: dict | None = None

    def _get(self) -> dict | None:
        obj, self.listed = self.listed, None
        return obj if obj is not None else super()._get()


def member_of(key: str, d: DeploymentPlanner, plan: Plan, gpus: dict[str, int], priority: int) -> Member:
    """A DGD's part in the round. A pool is fixed at its target (its floor is its target) when it
    is pinned, held for missing data or scaled by another scaler, and the whole DGD when nothing of
    it will be written (paused, advisory, not ready): then it holds what it has."""
    cfg, pools, overrides = d.policy.config, d.pools, d.control.state.overrides
    floors = {pools.prefill: cfg.min_prefill, pools.decode: cfg.min_decode}
    targets = dict(plan.targets)
    frozen = not plan.may_write or not plan.snap.ready
    for svc in pools.names():
        o = overrides.get(svc)
        if frozen:
            targets[svc] = plan.keep.get(svc, targets[svc])
        if frozen or svc in plan.held or svc in plan.snap.blocked or (o is not None and o.replicas is not None):
            floors[svc] = targets[svc]
        elif o is not None and o.min_replicas is not None:
            floors[svc] = max(floors[svc], o.min_replicas)
    return Member(key, pools.prefill, pools.decode, targets, floors, priority, gpus)


# ---- metrics: each DGD's registry, with namespace and dgd labels

class LabelledRegistries:
    """A collector that serves every planned DGD's own PlannerMetrics with `namespace` and `dgd`
    labels added (process-wide families left out)."""

    def __init__(self, planners: Callable[[], list[DeploymentPlanner]]) -> None:
        self.planners = planners

    def collect(self):
        families: dict[str, Metric] = {}
        for d in self.planners():
            for fam in d.metrics.registry.collect():
                if fam.name in PROCESS_FAMILIES:
                    continue
                out = families.setdefault(fam.name, Metric(fam.name, fam.documentation, fam.type, fam.unit))
                for s in fam.samples:
                    out.samples.append(Sample(s.name, {"namespace": d.namespace, "dgd": d.name, **s.labels},
                                              s.value, s.timestamp, s.exemplar))
        yield from families.values()

    def describe(self):
        return []


def process_only(metrics: PlannerMetrics) -> None:
    """Fleet mode: the process's own registry keeps only process-wide families; the per-DGD ones
    come from each DGD's registry with labels (an unlabelled copy would read 0)."""
    for value in list(vars(metrics).values()):
        if value is metrics.registry or not hasattr(value, "describe"):
            continue
        if not {f.name for f in value.describe()} & PROCESS_FAMILIES:
            metrics.registry.unregister(value)


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.deployments = Gauge("dynamo_planner_fleet_deployments", "DGDs this fleet planner plans", registry=r)
        self.unresolved = Gauge("dynamo_planner_fleet_unresolved_policies",
                                "policies whose DGD or pools cannot be resolved", registry=r)
        self.budget = Gauge("dynamo_planner_fleet_gpu_budget", "the fleet's GPU budget", registry=r)
        self.granted = Gauge("dynamo_planner_fleet_granted_gpus", "GPUs granted in the last round", registry=r)
        self.limited = Gauge("dynamo_planner_fleet_budget_limited", "1 while the DGD's plan is cut to the budget",
                             ["namespace", "dgd"], registry=r)


# ---- the fleet

class FleetPlanner:
    """Keeps one DeploymentPlanner per resolvable policy in `planners` (a list it changes in
    place: the process serves it) and runs the rounds. `make` builds a DeploymentPlanner for a
    DGD's narrowed config and its policy."""

    def __init__(self, cfg: ServiceConfig, api: client.ApiClient,
                 make: Callable[[ServiceConfig, PolicyStore], DeploymentPlanner],
                 planners: list[DeploymentPlanner], registry: CollectorRegistry) -> None:
        assert cfg.fleet is not None
        self.cfg, self.fleet, self.api, self.make = cfg, cfg.fleet, api, make
        self.planners = planners
        self.by_key: dict[str, DeploymentPlanner] = {}  # "<namespace>/<policy>" -> planner
        self.pools: dict[str, Pools] = {}
        self.gpus: dict[str, dict[str, int]] = {}
        self.unresolved: dict[str, str] = {}  # key -> why
        self.conditions: dict[str, list[Condition]] = {}  # extra conditions for the next status write
        self.previous: Allocation | None = None
        self.list_errors: dict[str, str] = {}
        self._status: dict[str, PolicyStore] = {}  # unresolved policies' status writers
        self._custom = client.CustomObjectsApi(api)
        self._scale = {ns: ScaleClient(api, ns) for ns in self.fleet.namespaces}
        self._next_resync = 0.0
        self.may_write: Callable[[], bool] = lambda: True  # under leader election: while this replica leads
        self.metrics = FleetMetrics(registry)
        if self.fleet.gpu_budget is not None:
            self.metrics.budget.set(self.fleet.gpu_budget)
        registry.register(LabelledRegistries(lambda: list(self.planners)))

    @staticmethod
    def key_of(d: DeploymentPlanner) -> str:
        return f"{d.policy_store.namespace}/{d.policy_store.name}"

    def find(self, namespace: str, dgd: str) -> DeploymentPlanner | None:
        return next((d for d in self.planners if d.namespace == namespace and d.name == dgd), None)

    # -- discovery

    def _resolve(self, ns: str, obj: dict, reads: RoundReads) -> tuple[PolicySpec, Pools, dict[str, int]]:
        name = obj["metadata"]["name"]
        try:
            spec = PolicySpec.model_validate(obj.get("spec") or {})
        except ValueError as exc:
            raise Unresolved("InvalidSpec", f"{KIND} {ns}/{name}: {str(exc).splitlines()[0][:500]}") from None
        where = f"{ns}/{spec.dgd_ref.name}"
        try:
            raw = reads.dgd(ns, spec.dgd_ref.name)
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                raise Unresolved("DGDNotFound", f"DynamoGraphDeployment {where} (spec.dgdRef.name) "
                                                "does not exist") from None
            raise
        dgd = parse_dgd(raw)
        pools = resolve_pools(dgd, spec.roles, where)
        gpus = {svc: dgd.spec.services[svc].gpus_per_replica for svc in (pools.prefill, pools.decode)}
        return spec, pools, gpus

    def reads(self) -> RoundReads:
        """A round's shared reads of the cluster and Prometheus."""
        return RoundReads(self.api, lambda ns: self._scale[ns].versions)

    def resync(self, reads: RoundReads | None = None) -> None:
        """Start a planner per new resolvable policy, stop those whose policy is gone or no longer
        resolves. A namespace that cannot be listed keeps its planners until it can."""
        reads = reads or self.reads()
        listed: dict[str, dict] = {}
        ok_ns = set()
        for ns in self.fleet.namespaces:
            try:
                items = reads.policies(ns)
            except Exception as exc:  # noqa: BLE001  one namespace must not stop the others
                self.list_errors[ns] = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("policies not listed", extra={"namespace": ns, "error": self.list_errors[ns]})
                continue
            self.list_errors.pop(ns, None)
            ok_ns.add(ns)
            for obj in items:
                listed[f"{ns}/{obj['metadata']['name']}"] = obj
        for key in [k for k in self.by_key if k.split("/")[0] in ok_ns and k not in listed]:
            self._stop(key, "its policy was deleted")
        for key in [k for k in self.unresolved if k.split("/")[0] in ok_ns and k not in listed]:
            self.unresolved.pop(key, None)
            self._status.pop(key, None)
        claimed: dict[str, str] = {}  # "<ns>/<dgd>" -> the policy that plans it
        for key, obj in sorted(listed.items()):
            ns = key.split("/")[0]
            try:
                spec, pools, gpus = self._resolve(ns, obj, reads)
                dgd_key = f"{ns}/{spec.dgd_ref.name}"
                if dgd_key in claimed:
                    raise Unresolved("DuplicatePolicy", f"DynamoGraphDeployment {dgd_key} is already planned by "
                                                        f"{KIND} {claimed[dgd_key]}")
                claimed[dgd_key] = key
            except Unresolved as exc:
                self._unresolvable(key, obj, exc)
                continue
            except Exception as exc:  # noqa: BLE001  the API failed: retried at the next resync
                log.warning("policy not resolved", extra={"policy": key, "error": str(exc)[:300]})
                continue
            current = self.by_key.get(key)
            if current is not None and self.pools.get(key) != pools:
                self._stop(key, "its pools changed")
                current = None
            self.gpus[key] = gpus
            if current is None:
                self._start(key, obj, spec, pools)
        self.metrics.deployments.set(len(self.by_key))
        self.metrics.unresolved.set(len(self.unresolved))

    def _start(self, key: str, obj: dict, spec: PolicySpec, pools: Pools) -> None:
        ns, name = key.split("/")
        ref = DeploymentRef(name=spec.dgd_ref.name, namespace=ns, prefill_service=pools.prefill,
                            decode_service=pools.decode, frontend_service=pools.frontend)
        try:
            d = self.make(self.cfg.for_deployment(ref), ListedPolicyStore(self.api, ns, spec.dgd_ref.name, name=name))
        except Exception as exc:  # noqa: BLE001  retried at the next resync
            self._unresolvable(key, obj, Unresolved("StartFailed", f"{type(exc).__name__}: {exc}"[:500]))
            return
        self.unresolved.pop(key, None)
        self._status.pop(key, None)
        # its status is written when something but the decision's numbers and time changed, else
        # at most every status_every_s: not 200 writes a round
        d.status_every_s = d.policy_store.status_every_s
        self.by_key[key], self.pools[key] = d, pools
        self.planners.append(d)
        log.info("planning a deployment", extra={"policy": key, "dgd": f"{ns}/{spec.dgd_ref.name}",
                                                 "prefill": pools.prefill, "decode": pools.decode})

    def _stop(self, key: str, why: str) -> None:
        d = self.by_key.pop(key)
        self.pools.pop(key, None)
        self.conditions.pop(key, None)
        self.planners[:] = [p for p in self.planners if p is not d]
        try:
            self.metrics.limited.remove(d.namespace, d.name)
        except KeyError:  # never in a budget round
            pass
        log.info("stopped planning a deployment", extra={"policy": key, "why": why})

    def _unresolvable(self, key: str, obj: dict, exc: Unresolved) -> None:
        if key in self.by_key:
            self._stop(key, str(exc))
        if self.unresolved.get(key) != str(exc):
            log.warning("policy not planned", extra={"policy": key, "reason": exc.reason, "why": str(exc)})
        self.unresolved[key] = str(exc)
        ns, name = key.split("/")
        store = self._status.setdefault(key, PolicyStore(self.api, ns, (obj.get("spec") or {}).get("dgdRef", {})
                                                          .get("name", name), name=name))
        store.obj = obj
        store.generation = obj["metadata"].get("generation", 0)
        if not self.may_write():  # a standby keeps the list for its API; only the leader reports
            return
        try:
            store.write_status({}, [("Planning", False, exc.reason, str(exc))])
        except Exception as err:  # noqa: BLE001  a report: never stops the resync
            log.warning("policy status not written", extra={"policy": key, "error": str(err)[:300]})

    # -- rounds

    def round(self) -> None:
        """Resync when due; then every DGD planned in isolation, cut to the budget, written."""
        reads = self.reads()  # this round's: every DGD reads from the same LISTs and queries
        if time.monotonic() >= self._next_resync:
            self.resync(reads)
            self._next_resync = time.monotonic() + self.fleet.resync_s
        plans: dict[str, Plan] = {}
        for key, d in list(self.by_key.items()):
            d.observer.reads = reads
            try:
                d.policy_store.listed = self._listed(reads, d)
                d.prepare()
                plans[key] = d.loop.plan()
            except Exception as exc:  # noqa: BLE001  one DGD's failure is its own
                d.failed(exc)
            finally:
                d.policy_store.listed = None
        if self.fleet.gpu_budget is not None:
            self._cut(plans, reads)
        for key, plan in plans.items():
            d = self.by_key[key]
            try:
                d.succeeded(d.loop.write(plan))
            except Exception as exc:  # noqa: BLE001  one DGD's failure is its own
                d.failed(exc)
        for d in self.by_key.values():
            d.observer.reads = None  # outside a round (a what-if, a standby) an observer reads for itself
            d.observed_prometheus()

    @staticmethod
    def _listed(reads: RoundReads, d: DeploymentPlanner) -> dict | None:
        """The DGD's policy from the round's LIST; None (a GET then) when it cannot be listed."""
        store = d.policy_store
        try:
            return next((o for o in reads.policies(store.namespace) if o["metadata"]["name"] == store.name), None)
        except Exception:  # noqa: BLE001  the refresh GETs it, and fails on its own if it must
            return None

    def _cut(self, plans: dict[str, Plan], reads: RoundReads) -> None:
        budget = self.fleet.gpu_budget
        members, held = [], {}
        for key, d in self.by_key.items():
            prio = d.policy_store.priority
            if key in plans:
                members.append(member_of(key, d, plans[key], self.gpus.get(key, {}), prio))
                current = plans[key].keep
            elif d.loop.last is not None:  # failed this round: what it has still takes GPUs
                current = dict(d.loop.last.current)
                members.append(Member(key, d.pools.prefill, d.pools.decode, current, current, prio,
                                      self.gpus.get(key)))
            else:
                continue
            try:
                pods = [pod_state(p) for p in reads.pods(d.namespace, d.name)]
            except Exception:  # noqa: BLE001  unlisted pods: what the adapters ask for is all it holds
                pods = []
            held[key] = holding(members[-1], current, pods)
        if not members:
            return
        alloc, _, conds = budget_round(members, budget, self.previous, held)
        targets, waits = admit_round(members, alloc, held, budget)
        self.previous = alloc
        self.metrics.granted.set(alloc.granted_gpus)
        for m in members:
            d = self.by_key[m.key]
            self.conditions[m.key] = [conds[m.key]]
            self.metrics.limited.labels(d.namespace, d.name).set(1 if alloc[m.key].limited else 0)
            plan = plans.get(m.key)
            if plan is None or not plan.may_write or not plan.snap.ready:  # nothing of it is written
                continue
            granted = {m.prefill: alloc[m.key].prefill, m.decode: alloc[m.key].decode}
            for svc, n in targets[m.key].items():
                if granted[svc] < plan.targets[svc]:
                    plan.reasons.append(f"{svc} cut from {plan.targets[svc]} to {granted[svc]} by the fleet's GPU "
                                        f"budget of {budget} GPUs (priority {m.priority})")
                plan.targets[svc] = min(plan.targets[svc], n)
            plan.reasons += waits.get(m.key, [])
        if any(alloc[m.key].limited for m in members):
            log.info("fleet budget round", extra={"allocation": alloc.message, "granted_gpus": alloc.granted_gpus})

    def listing(self) -> list[dict]:
        out = []
        for key, d in sorted(self.by_key.items()):
            last = d.loop.last
            cond = (self.conditions.get(key) or [None])[0]
            out.append({"namespace": d.namespace, "name": d.name, "policy": key,
                        "pools": {"prefill": d.pools.prefill, "decode": d.pools.decode},
                        "priority": d.policy_store.priority,
                        "targets": last.record.targets if last else {},
                        "budget_limited": bool(cond and cond[1]),
                        "last_error": d.last_error})
        return out


# ---- REST: who guards which deployment

class PerDeployment:
    """Authorizers per planned namespace/DGD, made by `factory` (the single-DGD authorizer for
    that DGD); a plain Authorizer (a static token) guards all of them."""

    def __init__(self, authorizer: Authorizer | Callable[[str, str], Authorizer]) -> None:
        self._one = authorizer if hasattr(authorizer, "authenticate") else None
        self._factory = authorizer
        self._made: dict[tuple[str, str], Authorizer] = {}

    def __call__(self, namespace: str, name: str) -> Authorizer:
        if self._one is not None:
            return self._one
        key = (namespace, name)
        if key not in self._made:
            self._made[key] = self._factory(namespace, name)
        return self._made[key]

    def authenticate(self, token: str) -> Caller:
        return (self._one or self(".", ".")).authenticate(token)

    def authorize(self, caller: Caller, verb: str) -> None:
        # a route not scoped to one DGD grants nothing in fleet mode
        raise AuthError(403, "in fleet mode access is granted per DGD: use the routes under "
                             "/v1/deployments/{namespace}/{name}")


def rest_target(fleet: FleetPlanner, guards: PerDeployment):
    """The FastAPI dependency for /v1/deployments/{namespace}/{name}/...: that DGD's control
    service (None when not planned) and its authorizer."""
    def target(namespace: Annotated[str, Path(pattern=NAME, max_length=63)],
               name: Annotated[str, Path(pattern=NAME, max_length=253)]) -> Target:
        d = fleet.find(namespace, name)
        return Target(d.control if d else None, guards(namespace, name), label=f"DynamoGraphDeployment {namespace}/{name}")
    return target


def rest_listing(fleet: FleetPlanner, guards: PerDeployment):
    """GET /v1/deployments: the planned DGDs the caller may read."""
    def listing(caller: Caller) -> list[dict]:
        out = []
        for item in fleet.listing():
            try:
                guards(item["namespace"], item["name"]).authorize(caller, READ)
            except AuthError as exc:
                if exc.status == 403:
                    continue
                raise HTTPException(exc.status, str(exc)) from exc
            out.append(item)
        return out
    return listing
