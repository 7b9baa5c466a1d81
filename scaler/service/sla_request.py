"""SLA targets from a DynamoGraphDeploymentRequest (nvidia.com/v1beta1): `spec.sla.ttft` and
`spec.sla.itl`, in milliseconds. Dynamo's profiler sizes a deployment for these targets; the
planner keeps holding them as load changes."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from scaler.control.state import SLATargets

GROUP, VERSION, PLURAL = "nvidia.com", "v1beta1", "dynamographdeploymentrequests"


class RequestSLAError(ValueError):
    pass


@dataclass(frozen=True)
class RequestSLA:
    generation: int
    sla: SLATargets


def parse(obj: dict) -> RequestSLA | None:
    """The SLA in a DGDR object, None when it names none; a malformed one is an error naming the field."""
    meta = obj.get("metadata") or {}
    where = f"DynamoGraphDeploymentRequest {meta.get('namespace')}/{meta.get('name')}"
    sla = (obj.get("spec") or {}).get("sla")
    if not sla:
        return None
    if not isinstance(sla, dict) or "ttft" not in sla or "itl" not in sla:
        raise RequestSLAError(f"{where}: spec.sla needs both ttft and itl (milliseconds), got {sla!r}")
    try:
        targets = SLATargets(ttft_ms=sla["ttft"], itl_ms=sla["itl"])
    except ValidationError as exc:
        err = exc.errors()[0]
        field = {"ttft_ms": "ttft", "itl_ms": "itl"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise RequestSLAError(f"{where}: spec.sla.{field}: {err['msg']}") from None
    return RequestSLA(int(meta.get("generation") or 0), targets)


def read(api: client.ApiClient, namespace: str, name: str) -> RequestSLA | None:
    try:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return parse(obj)
