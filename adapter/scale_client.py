"""Read and write a DGDSA through its `/scale` subresource, the one path every autoscaler uses.

Also finds the other autoscalers that target an adapter (HPAs, KEDA ScaledObjects), so a
writer can refuse to fight them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adapter import sync
from adapter import versions as api_versions
from adapter.models import DGD, DGD_PLURAL, DGDSA_PLURAL, GROUP, parse_dgd

KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL = "keda.sh", "v1alpha1", "scaledobjects"


class ScaleConflict(RuntimeError):
    """The adapter changed since it was read (optimistic concurrency)."""


@dataclass(frozen=True)
class ScaleState:
    name: str
    spec_replicas: int
    status_replicas: int | None
    selector: str
    resource_version: str


_LOOKUP = object()


class ScaleClient:
    def __init__(self, api: client.ApiClient, namespace: str, field_manager: str = "dynamo-scaling-planner",
                 versions: api_versions.Versions | None = None) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.namespace, self.field_manager = namespace, field_manager
        self._versions = versions

    @property
    def versions(self) -> api_versions.Versions:
        """The served versions, discovered on first use."""
        if self._versions is None:
            self._versions = api_versions.discover(self.api)
        return self._versions

    def get(self, name: str) -> ScaleState:
        s = self.custom.get_namespaced_custom_object_scale(GROUP, self.versions.dgdsa, self.namespace,
                                                           DGDSA_PLURAL, name)
        spec, status, meta = s.get("spec") or {}, s.get("status") or {}, s.get("metadata") or {}
        return ScaleState(name, int(spec.get("replicas", 0)), status.get("replicas"), status.get("selector", ""),
                          meta.get("resourceVersion", ""))

    def set(self, name: str, replicas: int, resource_version: str | None = None) -> ScaleState:
        """Write spec.replicas; with `resource_version`, only if nothing changed since that read."""
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        body: dict = {"spec": {"replicas": int(replicas)}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self.custom.patch_namespaced_custom_object_scale(
                GROUP, self.versions.dgdsa, self.namespace, DGDSA_PLURAL, name, body,
                field_manager=self.field_manager)
        except ApiException as exc:
            if exc.status == 409:
                raise ScaleConflict(f"adapter {self.namespace}/{name} changed since it was read") from exc
            raise
        return self.get(name)

    def other_scalers(self, name: str, dgd: DGD | None = _LOOKUP) -> list[str]:  # type: ignore[assignment]
        """HPAs and ScaledObjects in the namespace whose scale target is this adapter, and an
        in-graph Dynamo planner of the DGD it scales (`dgd`, looked up when not given). Lists
        them on every call: for callers without a watch cache (the planner); the controller keeps
        an index instead, and both apply `sync.other_scalers`."""
        if dgd is _LOOKUP:
            dgd = self._dgd_of(name)
        autoscalers: list[tuple[str, str, dict]] = []
        for hpa in self.autoscaling.list_namespaced_horizontal_pod_autoscaler(self.namespace).items:
            ref = hpa.spec.scale_target_ref
            autoscalers.append((sync.HPA_KIND, hpa.metadata.name,
                                {"kind": ref.kind, "name": ref.name, "apiVersion": ref.api_version}))
        try:
            sos = self.custom.list_namespaced_custom_object(KEDA_GROUP, KEDA_VERSION, self.namespace, KEDA_PLURAL)
        except ApiException as exc:
            if exc.status != 404:  # KEDA not installed
                raise
            sos = {"items": []}
        for so in sos.get("items", []):
            autoscalers.append((sync.SCALED_OBJECT_KIND, so["metadata"]["name"],
                                (so.get("spec") or {}).get("scaleTargetRef") or {}))
        return sync.other_scalers(name, dgd, autoscalers)

    def _dgd_of(self, adapter: str) -> DGD | None:
        v = self.versions
        try:
            raw = self.custom.get_namespaced_custom_object(GROUP, v.dgdsa, self.namespace, DGDSA_PLURAL, adapter)
            dgd = self.custom.get_namespaced_custom_object(GROUP, v.dgd, self.namespace, DGD_PLURAL,
                                                           raw["spec"]["dgdRef"]["name"])
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return parse_dgd(dgd)
