"""Pure decisions of the adapter controller: which adapters a DGD should have, which adapter owns
each service, what to write to the DGD, who else is scaling an adapter, and the resulting
conditions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from adapter.models import DGD, DGDSA_KIND, GROUP, adapter_name
from adapter.versions import dgdsa_service

OWNER_ANNOTATION = "scaling.dynamo-scaling.io/owner"
ALLOW_ZERO_ANNOTATION = "scaling.dynamo-scaling.io/allow-scale-to-zero"
# field managers of the scalers we know, as they appear in managedFields
KNOWN_MANAGERS = {
    "kube-controller-manager": "HorizontalPodAutoscaler",
    "keda": "KEDA",
    "dynamo-scaling-planner": "planner",
    "kubectl": "kubectl",
    "kubectl-scale": "kubectl",
}


# the controller's own writes (seeding an adapter at creation) are not scaling decisions; each
# replica writes as "dynamo-scaling-adapter/<identity>"
SELF_MANAGERS = {"dynamo-scaling-adapter"}


def is_self_manager(manager: str) -> bool:
    return manager in SELF_MANAGERS or any(manager.startswith(m + "/") for m in SELF_MANAGERS)


@dataclass(frozen=True)
class WantedAdapter:
    name: str
    service: str
    seed_replicas: int


def wanted_adapters(dgd: DGD) -> dict[str, WantedAdapter]:
    """Adapters the DGD asks for, by adapter name."""
    name = dgd.metadata["name"]
    return {
        adapter_name(name, svc): WantedAdapter(adapter_name(name, svc), svc, spec.effective_replicas)
        for svc, spec in dgd.spec.services.items() if spec.adapter_enabled
    }


@dataclass(frozen=True)
class AdapterInfo:
    """What the ownership rules need to know of one adapter."""

    name: str
    dgd: str  # spec.dgdRef.name
    service: str  # spec.dgdRef.serviceName (v1alpha1) or componentName (v1beta1)
    created: str = ""  # metadata.creationTimestamp (RFC 3339 in UTC sorts as text)
    owned: bool = False  # carries an ownerReference to the DGD it names
    deleting: bool = False

    @classmethod
    def from_raw(cls, raw: dict, dgd_uid: str | None = None) -> AdapterInfo:
        meta, ref = raw["metadata"], raw["spec"]["dgdRef"]
        owned = dgd_uid is not None and any(r.get("uid") == dgd_uid for r in meta.get("ownerReferences") or [])
        return cls(meta["name"], ref["name"], dgdsa_service(raw), meta.get("creationTimestamp") or "", owned,
                   bool(meta.get("deletionTimestamp")))


@dataclass(frozen=True)
class Verdict:
    """May this adapter write its service? If not, the reason its conditions carry and why."""

    owns: bool
    reason: str | None = None  # DuplicateAdapter, ServiceMismatch or AdapterNotEnabled
    message: str = ""
    owner: str | None = None  # the adapter that does drive the service, if any


def _squats(dgd: DGD, a: AdapterInfo) -> str | None:
    """The service of `dgd` whose adapter name `a` has although it refers to another service."""
    if a.dgd != dgd.metadata.get("name"):
        return None
    mine = adapter_name(a.dgd, a.service)
    return next((svc for svc in sorted(dgd.spec.services)
                 if adapter_name(a.dgd, svc) == a.name and a.name != mine), None)


def service_owners(dgd: DGD, adapters: list[AdapterInfo]) -> dict[str, str]:
    """The one adapter that drives each flagged service, by service. Candidates refer to the
    service by dgdRef and are not named for another service; of those, an adapter the DGD owns
    (created by its flag, or adopted earlier) comes first, then the one named `<dgd>-<service>`,
    then the oldest (name breaks a tie), so that the choice stays put while the adapters do."""
    name = dgd.metadata.get("name")
    out = {}
    for svc, spec in dgd.spec.services.items():
        if not spec.adapter_enabled:
            continue
        cands = [a for a in adapters if a.dgd == name and a.service == svc and not a.deleting
                 and _squats(dgd, a) is None]
        if cands:
            best = min(cands, key=lambda a: (not a.owned, a.name != adapter_name(name, svc), a.created, a.name))
            out[svc] = best.name
    return out


def owns_outright(dgd: DGD, a: AdapterInfo) -> bool:
    """An adapter the DGD owns, named `<dgd>-<service>` for its flagged service, comes first in
    `service_owners` whatever else exists: no need to list the others to judge it."""
    spec = dgd.spec.services.get(a.service)
    return (a.owned and not a.deleting and a.dgd == dgd.metadata.get("name")
            and a.name == adapter_name(a.dgd, a.service) and spec is not None and spec.adapter_enabled)


def judge(dgd: DGD, adapter: AdapterInfo, adapters: list[AdapterInfo]) -> Verdict:
    """Whether `adapter` (one of `adapters`, which refers to `dgd`) may write its service."""
    if (svc := _squats(dgd, adapter)) is not None:
        return Verdict(False, "ServiceMismatch",
                       f"the name {adapter.name} belongs to the adapter of service {svc!r} but spec.dgdRef.serviceName "
                       f"is {adapter.service!r}; this adapter scales nothing: delete it and name the adapter of "
                       f"{adapter.service!r} {adapter_name(adapter.dgd, adapter.service)} or anything not taken")
    spec = dgd.spec.services.get(adapter.service)
    if spec is None:
        return Verdict(True)  # nothing to own: plan_sync reports ServiceNotFound
    if not spec.adapter_enabled:
        return Verdict(False, "AdapterNotEnabled",
                       f"service {adapter.service!r} of {adapter.dgd} does not set scalingAdapter.enabled: true, so no "
                       "adapter may scale it; set the flag on the DynamoGraphDeployment to have this adapter adopted")
    owner = service_owners(dgd, adapters).get(adapter.service)
    if owner is None or owner == adapter.name:
        return Verdict(True, owner=owner or adapter.name)
    return Verdict(False, "DuplicateAdapter",
                   f"service {adapter.service!r} of {adapter.dgd} is scaled by adapter {owner}; this adapter is "
                   f"ignored: scale {owner} instead and delete this one", owner)


@dataclass(frozen=True)
class AdapterActions:
    """What the DGD side does about its adapters."""

    create: list[WantedAdapter]
    adopt: list[str]
    delete: list[str]
    owners: dict[str, str]  # service -> owning adapter


def plan_adapters(dgd: DGD, adapters: list[AdapterInfo]) -> AdapterActions:
    """Each flagged service gets its owner adopted, or a new `<dgd>-<service>` adapter when none
    refers to it (unless another object already has that name); adapters the DGD owns are
    deleted once neither their service nor their name is wanted any more."""
    name = dgd.metadata.get("name")
    wanted = wanted_adapters(dgd)
    owners = service_owners(dgd, adapters)
    by_name = {a.name: a for a in adapters}
    create = [w for w in wanted.values() if w.service not in owners and w.name not in by_name]
    adopt = sorted(o for o in owners.values() if not by_name[o].owned)
    wanted_services = {w.service for w in wanted.values()}
    delete = sorted(a.name for a in adapters if a.owned and a.dgd == name and not a.deleting
                    and a.name not in wanted and a.service not in wanted_services)
    return AdapterActions(create, adopt, delete, owners)


@dataclass(frozen=True)
class SyncPlan:
    """What to do for one adapter."""

    write_replicas: int | None  # the value to write into the DGD service, None = nothing to write
    reason: str
    message: str
    ok: bool


def plan_sync(dgd: DGD | None, service: str, desired: int, annotations: dict[str, str]) -> SyncPlan:
    if dgd is None:
        return SyncPlan(None, "DGDNotFound", "the referenced DynamoGraphDeployment does not exist", False)
    spec = dgd.spec.services.get(service)
    if spec is None:
        return SyncPlan(None, "ServiceNotFound",
                        f"service {service!r} is not in the DynamoGraphDeployment "
                        f"(services: {', '.join(sorted(dgd.spec.services)) or 'none'})", False)
    current = spec.effective_replicas
    if desired == 0 and spec.node_count > 1 and annotations.get(ALLOW_ZERO_ANNOTATION) != "true":
        return SyncPlan(None, "ScaleToZeroRefused",
                        f"service {service!r} is multinode ({spec.node_count} nodes per replica): scale to zero "
                        f"needs the annotation {ALLOW_ZERO_ANNOTATION}=\"true\"", False)
    if current == desired:
        return SyncPlan(None, "InSync", f"{service} runs at {desired} replicas", True)
    return SyncPlan(desired, "Scaled", f"{service} scaled from {current} to {desired}", True)


HPA_KIND, SCALED_OBJECT_KIND = "HorizontalPodAutoscaler", "ScaledObject"


def targeted_adapter(kind: str, ref: Mapping) -> str | None:
    """The adapter that an autoscaler's scaleTargetRef points at, or None when it points at
    anything else. An HPA names the API group in apiVersion; a KEDA ScaledObject may leave it out."""
    if ref.get("kind") != DGDSA_KIND:
        return None
    if kind == HPA_KIND and not (ref.get("apiVersion") or "").startswith(GROUP):
        return None
    return ref.get("name") or None


def in_graph_planners(dgd: DGD) -> list[str]:
    """Dynamo's own planner deployed as a component of the graph (type planner) scales the
    graph's adapters itself."""
    return [f"DynamoPlanner/{dgd.metadata.get('name')}/{svc}" for svc in dgd.planner_services()]


def other_scalers(adapter: str, dgd: DGD | None, autoscalers: Iterable[tuple[str, str, Mapping]]) -> list[str]:
    """Who else scales `adapter`: of `autoscalers` ((kind, name, scaleTargetRef) of the HPAs and
    ScaledObjects in its namespace) those aimed at it, and an in-graph planner of its DGD."""
    found = in_graph_planners(dgd) if dgd is not None else []
    found += [f"{kind}/{name}" for kind, name, ref in autoscalers if targeted_adapter(kind, ref) == adapter]
    return sorted(without_keda_hpas(found))


def without_keda_hpas(actors: list[str]) -> list[str]:
    """KEDA drives a ScaledObject's target through an HPA of its own (`keda-hpa-<name>`): that HPA
    is the ScaledObject, not a second scaler."""
    objects = {a.split("/", 1)[1] for a in actors if a.startswith("ScaledObject/")}
    return [a for a in actors
            if not (a.startswith("HorizontalPodAutoscaler/keda-hpa-")
                    and a.removeprefix("HorizontalPodAutoscaler/keda-hpa-") in objects)]


def replicas_writers(managed_fields: list[dict]) -> list[str]:
    """Field managers that own spec.replicas of the adapter (the last writer of each kind)."""
    out = []
    for mf in managed_fields or []:
        spec = ((mf.get("fieldsV1") or {}).get("f:spec") or {})
        if "f:replicas" in spec:
            out.append(mf.get("manager", "unknown"))
    return out


@dataclass
class Scalers:
    autoscalers: list[str] = field(default_factory=list)  # HPA/ScaledObject objects targeting the adapter
    planner_claim: bool = False
    last_writer: str | None = None

    def actors(self) -> list[str]:
        actors = without_keda_hpas(list(self.autoscalers))
        if self.planner_claim:
            actors.append("planner")
        if self.last_writer and not is_self_manager(self.last_writer):
            kind = KNOWN_MANAGERS.get(self.last_writer, self.last_writer)
            covered = (kind == "HorizontalPodAutoscaler" and any(a.startswith("HorizontalPodAutoscaler/") for a in actors)) \
                or (kind == "KEDA" and any(a.startswith("ScaledObject/") for a in actors)) \
                or (kind == "planner" and self.planner_claim)
            if not covered and kind not in ("HorizontalPodAutoscaler", "KEDA"):
                actors.append(kind)
        return actors

    def conflict(self) -> str | None:
        """Several autoscalers (or an autoscaler plus the planner) drive one adapter. A person
        scaling by hand beside nothing else is not a conflict."""
        automatic = [a for a in self.actors() if a != "kubectl"]
        if len(automatic) > 1 or (automatic and "kubectl" in self.actors()):
            return ", ".join(sorted(set(self.actors())))
        return None
