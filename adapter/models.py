"""Typed views of the DynamoGraphDeployment and DynamoGraphDeploymentScalingAdapter objects.

They mirror `crds/` field for field (a test compares them with the YAML schemas), use the
Kubernetes camelCase names on the wire, and keep unknown DGD fields so nothing is dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "nvidia.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
DGD_KIND, DGD_PLURAL = "DynamoGraphDeployment", "dynamographdeployments"
DGDSA_KIND, DGDSA_PLURAL = "DynamoGraphDeploymentScalingAdapter", "dynamographdeploymentscalingadapters"

LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
LABEL_COMPONENT_TYPE = "nvidia.com/dynamo-component-type"
LABEL_DYNAMO_NAMESPACE = "nvidia.com/dynamo-namespace"

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
INT32_MAX = 2**31 - 1


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


# --- DynamoGraphDeploymentScalingAdapter -------------------------------------------------

class DGDRef(_Wire):
    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    service_name: str = Field(alias="serviceName", min_length=1, max_length=63)


class DGDSASpec(_Wire):
    replicas: int = Field(ge=0, le=INT32_MAX)
    dgd_ref: DGDRef = Field(alias="dgdRef")


CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(_Wire):
    type: str = Field(max_length=316, pattern=CONDITION_TYPE)
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, alias="observedGeneration", ge=0)
    last_transition_time: dt.datetime = Field(alias="lastTransitionTime")
    reason: str = Field(min_length=1, max_length=1024, pattern=CONDITION_REASON)
    message: str = Field(max_length=32768)


class DGDSAStatus(_Wire):
    replicas: int | None = Field(default=None, ge=0, le=INT32_MAX)
    ready_replicas: int | None = Field(default=None, alias="readyReplicas", le=INT32_MAX)
    selector: str | None = None
    last_scale_time: dt.datetime | None = Field(default=None, alias="lastScaleTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(default_factory=list)


class DGDSA(_Open):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = DGDSA_KIND
    metadata: dict = Field(default_factory=dict)
    spec: DGDSASpec
    status: DGDSAStatus | None = None


def adapter_name(dgd_name: str, service: str) -> str:
    """Name of the adapter for one DGD service: `<dgd>-<service lower-cased>`."""
    return f"{dgd_name}-{service.lower()}"


def pod_selector(dgd_name: str, service: str) -> str:
    return f"{LABEL_DGD}={dgd_name},{LABEL_COMPONENT}={service}"


# --- DynamoGraphDeployment ---------------------------------------------------------------

class Multinode(_Open):
    node_count: int | None = Field(default=None, alias="nodeCount", ge=2, le=INT32_MAX)


class ScalingAdapterSpec(_Wire):
    enabled: bool = False


class GPUResources(_Open):
    gpu: str | None = None


class Resources(_Open):
    limits: GPUResources | None = None
    requests: GPUResources | None = None


class ServiceSpec(_Open):
    component_type: str | None = Field(default=None, alias="componentType")
    sub_component_type: str | None = Field(default=None, alias="subComponentType")
    replicas: int | None = Field(default=None, ge=0, le=INT32_MAX)
    multinode: Multinode | None = None
    scaling_adapter: ScalingAdapterSpec | None = Field(default=None, alias="scalingAdapter")
    resources: Resources | None = None

    @property
    def effective_replicas(self) -> int:
        return 1 if self.replicas is None else self.replicas

    @property
    def adapter_enabled(self) -> bool:
        return bool(self.scaling_adapter and self.scaling_adapter.enabled)

    @property
    def node_count(self) -> int:
        return (self.multinode.node_count if self.multinode and self.multinode.node_count else 1)

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica uses: node count x the per-node gpu limit (1 if unset)."""
        raw = self.resources.limits.gpu if self.resources and self.resources.limits else None
        try:
            per_node = int(raw) if raw is not None else 1
        except ValueError:
            per_node = 1
        return self.node_count * per_node


class DGDSpec(_Open):
    services: dict[str, ServiceSpec] = Field(default_factory=dict, max_length=25)


class ServiceStatus(_Open):
    component_kind: str | None = Field(default=None, alias="componentKind")
    component_name: str | None = Field(default=None, alias="componentName")
    replicas: int | None = None
    updated_replicas: int | None = Field(default=None, alias="updatedReplicas")
    ready_replicas: int | None = Field(default=None, alias="readyReplicas")
    available_replicas: int | None = Field(default=None, alias="availableReplicas")


class DGDCondition(_Open):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: dt.datetime | None = Field(default=None, alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class DGDStatus(_Open):
    state: Literal["initializing", "pending", "successful", "failed"] | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[DGDCondition] = Field(default_factory=list)
    services: dict[str, ServiceStatus] = Field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)


class DGD(_Open):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = DGD_KIND
    metadata: dict = Field(default_factory=dict)
    spec: DGDSpec = Field(default_factory=DGDSpec)
    status: DGDStatus | None = None

    def planner_services(self) -> list[str]:
        """Services of type planner: Dynamo's own planner runs inside this graph."""
        return sorted(n for n, s in self.spec.services.items() if (s.component_type or "").lower() == "planner")


# --- one internal model for both served versions ----------------------------------------------

GPU_RESOURCE = "nvidia.com/gpu"
GROUP_MEMBERS = "groupMembers"  # extra key of a service that stands for a v1beta1 component group


def _main_container_gpus(comp: dict) -> str | None:
    """v1beta1 keeps resources in podTemplate; the container named "main" is the workload."""
    containers = (((comp.get("podTemplate") or {}).get("spec") or {}).get("containers") or [])
    main = next((c for c in containers if c.get("name") == "main"), None)
    limits = ((main or {}).get("resources") or {}).get("limits") or {}
    value = limits.get(GPU_RESOURCE)
    return None if value is None else str(value)


def parse_dgd(raw: dict) -> DGD:
    """The internal view of a DGD read in either version: v1alpha1's service map, with v1beta1
    components as services (GPUs from the main container of their podTemplate) and v1beta1
    component groups that have a scaling adapter as services of their own (`groupMembers`)."""
    from adapter import versions

    if versions.dgd_shape(raw) == versions.V1ALPHA1:
        return DGD.model_validate(raw)
    spec = raw.get("spec") or {}
    view = versions.dgd_to_v1alpha1(raw)
    services = view["spec"]["services"]
    for comp in spec.get("components") or []:
        svc = services[comp["name"]]
        gpus = _main_container_gpus(comp)
        if gpus is not None and not ((svc.get("resources") or {}).get("limits") or {}).get("gpu"):
            svc["resources"] = {**(svc.get("resources") or {}),
                                "limits": {**((svc.get("resources") or {}).get("limits") or {}), "gpu": gpus}}
    for group in (spec.get("experimental") or {}).get("componentGroups") or []:
        if group.get("name") in services or "scalingAdapter" not in group:
            continue  # only a group with an adapter is a unit of its own; a name clash keeps the component
        members = [m.get("name") for m in group.get("components") or []]
        nodes = max([(services.get(m) or {}).get("multinode", {}).get("nodeCount", 1) or 1 for m in members] or [1])
        services[group["name"]] = {
            "replicas": group.get("replicas"), GROUP_MEMBERS: members,
            "scalingAdapter": {"enabled": True},
            **({"multinode": {"nodeCount": nodes}} if nodes > 1 else {}),
        }
    view["spec"].pop("experimental", None)
    return DGD.model_validate(view)
