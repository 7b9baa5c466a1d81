"""Pure decisions of the adapter controller: which adapters a DGD should have, what to write
to the DGD, who else is scaling an adapter, and the resulting conditions."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapter.models import DGD, adapter_name

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
class SyncPlan:
    """What to do for one adapter."""

    write_replicas: int | None  # the value to write into the DGD service, None = nothing to write
    applied: int | None  # replicas in effect on the DGD service after the write
    reason: str
    message: str
    ok: bool
    reverted_edit: bool = False


def plan_sync(dgd: DGD | None, service: str, desired: int, annotations: dict[str, str]) -> SyncPlan:
    if dgd is None:
        return SyncPlan(None, None, "DGDNotFound", "the referenced DynamoGraphDeployment does not exist", False)
    spec = dgd.spec.services.get(service)
    if spec is None:
        return SyncPlan(None, None, "ServiceNotFound",
                        f"service {service!r} is not in the DynamoGraphDeployment "
                        f"(services: {', '.join(sorted(dgd.spec.services)) or 'none'})", False)
    current = spec.effective_replicas
    if desired == 0 and spec.node_count > 1 and annotations.get(ALLOW_ZERO_ANNOTATION) != "true":
        return SyncPlan(None, current, "ScaleToZeroRefused",
                        f"service {service!r} is multinode ({spec.node_count} nodes per replica): scale to zero "
                        f"needs the annotation {ALLOW_ZERO_ANNOTATION}=\"true\"", False)
    if current == desired:
        return SyncPlan(None, current, "InSync", f"{service} runs at {desired} replicas", True)
    return SyncPlan(desired, desired, "Scaled", f"{service} scaled from {current} to {desired}", True)


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
        actors = list(self.autoscalers)
        keda_hpas = [a for a in actors if a.startswith("HorizontalPodAutoscaler/keda-hpa-")]
        if any(a.startswith("ScaledObject/") for a in actors):
            actors = [a for a in actors if a not in keda_hpas]  # KEDA's own HPA is the ScaledObject
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
