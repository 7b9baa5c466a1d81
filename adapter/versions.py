"""The two API versions Dynamo serves, as pure functions: shape conversion between them (the
conversion webhook runs these) and the version discovery the controller and planner use.

Shapes, from Dynamo's published types (github.com/ai-dynamo/dynamo, deploy/operator/api/v1alpha1
and v1beta1):
- DGD v1alpha1: `spec.services` is a map keyed by service name; an entry carries `componentType`
  and opts into an adapter with `scalingAdapter.enabled: true`; status per service under
  `status.services`.
- DGD v1beta1: `spec.components` is a list keyed by `name`; an entry carries `type` and opts in
  by the presence of `scalingAdapter` (an empty object is enough); status per component under
  `status.components`; `spec.experimental.componentGroups` are scale units of several
  components with their own `replicas` and `scalingAdapter`.
- DGDSA: `spec.dgdRef.serviceName` (v1alpha1) is `spec.dgdRef.componentName` in v1beta1.
Every other field is carried over unchanged, so fields this project does not know survive a
round trip.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

GROUP = "nvidia.com"
V1ALPHA1, V1BETA1 = "v1alpha1", "v1beta1"
KNOWN = (V1ALPHA1, V1BETA1)  # oldest first
# v1beta1 lists components in an order a v1alpha1 map cannot hold; the order rides along here
ORDER_ANNOTATION = "scaling.dynamo-scaling.io/component-order"


def version_of(obj: dict) -> str:
    return (obj.get("apiVersion") or f"{GROUP}/{V1ALPHA1}").rpartition("/")[2]


def dgd_shape(obj: dict) -> str:
    """The shape the object's spec really has. Normally its apiVersion's; a CRD served without
    conversion (strategy None) hands out stored objects under any served apiVersion, so the
    content decides when it is unambiguous."""
    spec = obj.get("spec") or {}
    if isinstance(spec.get("components"), list) and "services" not in spec:
        return V1BETA1
    if isinstance(spec.get("services"), dict) and "components" not in spec:
        return V1ALPHA1
    return version_of(obj)


# -- DynamoGraphDeployment -------------------------------------------------------------------

def _service_to_component(name: str, svc: dict) -> dict:
    out = {"name": name}
    for k, v in svc.items():
        if k == "componentType":
            out["type"] = v
        elif k == "scalingAdapter":
            rest = {a: b for a, b in (v or {}).items() if a != "enabled"}
            if (v or {}).get("enabled"):
                out["scalingAdapter"] = rest
        else:
            out[k] = copy.deepcopy(v)
    return out


def _component_to_service(comp: dict) -> tuple[str, dict]:
    out = {}
    for k, v in comp.items():
        if k == "name":
            continue
        if k == "type":
            out["componentType"] = v
        elif k == "scalingAdapter":
            out["scalingAdapter"] = {**copy.deepcopy(v or {}), "enabled": True}
        else:
            out[k] = copy.deepcopy(v)
    return comp["name"], out


def dgd_to_v1beta1(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = f"{GROUP}/{V1BETA1}"
    if dgd_shape(obj) == V1BETA1:
        return out
    spec = out.get("spec")
    if isinstance(spec, dict) and "services" in spec:
        services = spec.pop("services") or {}
        # the API server hands maps out in key order; that is the list order unless one was carried
        comps = [_service_to_component(n, services[n] or {}) for n in sorted(services)]
        order = _annotations(out).pop(ORDER_ANNOTATION, None)
        if order:
            rank = {n: i for i, n in enumerate(json.loads(order))}
            comps.sort(key=lambda c: rank.get(c["name"], len(rank)))
        if not _annotations(out):
            (out.get("metadata") or {}).pop("annotations", None)
        spec["components"] = comps
    status = out.get("status")
    if isinstance(status, dict) and "services" in status:
        status["components"] = status.pop("services")
    return out


def dgd_to_v1alpha1(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = f"{GROUP}/{V1ALPHA1}"
    if dgd_shape(obj) == V1ALPHA1:
        return out
    spec = out.get("spec")
    if isinstance(spec, dict) and "components" in spec:
        comps = spec.pop("components") or []
        spec["services"] = dict(_component_to_service(c) for c in comps)
        names = [c["name"] for c in comps]
        if names != sorted(names):  # only a non-trivial order needs carrying
            out.setdefault("metadata", {}).setdefault("annotations", {})[ORDER_ANNOTATION] = json.dumps(names)
    status = out.get("status")
    if isinstance(status, dict) and "components" in status:
        status["services"] = status.pop("components")
    return out


def _annotations(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("annotations") or {}


# -- DynamoGraphDeploymentScalingAdapter ------------------------------------------------------

def dgdsa_to(obj: dict, version: str) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = f"{GROUP}/{version}"
    ref = (out.get("spec") or {}).get("dgdRef")
    if isinstance(ref, dict):
        old, new = ("componentName", "serviceName") if version == V1ALPHA1 else ("serviceName", "componentName")
        if old in ref:
            ref[new] = ref.pop(old)
    return out


def dgdsa_service(obj: dict) -> str:
    """The DGD service/component an adapter refers to, whichever version it was read in."""
    ref = (obj.get("spec") or {}).get("dgdRef") or {}
    return ref.get("serviceName") or ref.get("componentName") or ""


def convert(obj: dict, desired_api_version: str) -> dict:
    """One object of either kind to the desired `nvidia.com/<version>`."""
    version = desired_api_version.rpartition("/")[2]
    if version not in KNOWN:
        raise ValueError(f"unknown version {desired_api_version}")
    kind = obj.get("kind")
    if kind == "DynamoGraphDeployment":
        return dgd_to_v1beta1(obj) if version == V1BETA1 else dgd_to_v1alpha1(obj)
    if kind == "DynamoGraphDeploymentScalingAdapter":
        return dgdsa_to(obj, version)
    raise ValueError(f"cannot convert kind {kind!r}")


# -- discovery -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Versions:
    """The version to read and write each kind in."""

    dgd: str = V1ALPHA1
    dgdsa: str = V1ALPHA1


def choose(preferred: str | None, served: dict[str, set[str]], plural: str) -> str:
    """The group's preferred version if it serves `plural` and we know it, else the newest known
    version that serves it, else v1alpha1 (nothing installed yet: the contract's version)."""
    if preferred in KNOWN and plural in served.get(preferred, set()):
        return preferred
    for v in reversed(KNOWN):
        if plural in served.get(v, set()):
            return v
    return V1ALPHA1


def discover(api) -> Versions:
    """Ask the API server's discovery which versions of nvidia.com it serves."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        groups = client.ApisApi(api).get_api_versions().groups or []
    except ApiException as exc:
        log.warning("API discovery failed; using v1alpha1", extra={"status": exc.status})
        return Versions()
    group = next((g for g in groups if g.name == GROUP), None)
    if group is None:
        return Versions()
    served: dict[str, set[str]] = {}
    custom = client.CustomObjectsApi(api)
    for gv in group.versions or []:
        if gv.version in KNOWN:
            served[gv.version] = {r.name for r in custom.get_api_resources(GROUP, gv.version).resources or []}
    pref = group.preferred_version.version if group.preferred_version else None
    found = Versions(choose(pref, served, "dynamographdeployments"),
                     choose(pref, served, "dynamographdeploymentscalingadapters"))
    log.info("API versions", extra={"dgd": found.dgd, "dgdsa": found.dgdsa})
    return found


# -- writes ----------------------------------------------------------------------------------

def _ptr(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def replicas_patch(raw: dict, service: str, replicas: int) -> list[dict]:
    """JSON-patch operations that set the replicas of one service (v1alpha1), component or
    component group (v1beta1) of the DGD `raw`, each guarded by a test of what was read so that
    a concurrent change fails the patch instead of being overwritten. LookupError when the DGD
    has no such service."""
    spec = raw.get("spec") or {}
    if dgd_shape(raw) == V1ALPHA1:
        svc = (spec.get("services") or {}).get(service)
        if svc is None:
            raise LookupError(f"service {service!r} not in the DynamoGraphDeployment")
        path = f"/spec/services/{_ptr(service)}/replicas"
        guard = [{"op": "test", "path": path, "value": svc["replicas"]}] if "replicas" in svc else []
        return guard + [{"op": "replace" if "replicas" in svc else "add", "path": path, "value": replicas}]
    for base, items in (("/spec/components", spec.get("components") or []),
                        ("/spec/experimental/componentGroups",
                         ((spec.get("experimental") or {}).get("componentGroups") or []))):
        for i, item in enumerate(items):
            if item.get("name") == service:
                path = f"{base}/{i}/replicas"
                # the index is only meaningful while the same entry sits there
                guard = [{"op": "test", "path": f"{base}/{i}/name", "value": service}]
                if "replicas" in item:
                    guard.append({"op": "test", "path": path, "value": item["replicas"]})
                return guard + [{"op": "replace" if "replicas" in item else "add", "path": path, "value": replicas}]
    raise LookupError(f"component {service!r} not in the DynamoGraphDeployment")


def adapter_body(version: str, name: str, dgd_name: str, service: str, replicas: int, owner: dict) -> dict:
    ref_key = "serviceName" if version == V1ALPHA1 else "componentName"
    return {"apiVersion": f"{GROUP}/{version}", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": name, "ownerReferences": [owner]},
            "spec": {"replicas": replicas, "dgdRef": {"name": dgd_name, ref_key: service}}}
