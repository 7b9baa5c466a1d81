"""Builders for the objects tests and demos apply: DGDs and HPAs on scaling adapters."""

from __future__ import annotations

ANNOTATION_STARTUP = "devcluster.dynamo-scaling.io/startup-delay-seconds"


def dgd(name: str, services: dict, startup_delay_s: float | None = None,
        annotations: dict[str, str] | None = None) -> dict:
    notes = dict(annotations or {})
    if startup_delay_s is not None:
        notes[ANNOTATION_STARTUP] = f"{startup_delay_s:g}"
    meta: dict = {"name": name}
    if notes:
        meta["annotations"] = notes
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": meta,
            "spec": {"services": services}}


def disaggregated(prefill: int = 1, decode: int = 1, frontend: bool = True) -> dict:
    """Services of a disaggregated deployment: a frontend, prefill and decode pools with adapters."""
    services = {"Frontend": {"componentType": "frontend", "replicas": 1}} if frontend else {}
    for pool, n in (("prefill", prefill), ("decode", decode)):
        services[pool] = {"componentType": "worker", "subComponentType": pool, "replicas": n,
                          "scalingAdapter": {"enabled": True}}
    return services


def external_hpa(name: str, adapter: str, metric: str, average_value: str, match_labels: dict[str, str],
                 max_replicas: int, min_replicas: int = 1, behavior: dict | None = None) -> dict:
    """An autoscaling/v2 HPA on a DGDSA with one External metric and an AverageValue target."""
    spec = {"scaleTargetRef": {"apiVersion": "nvidia.com/v1alpha1",
                               "kind": "DynamoGraphDeploymentScalingAdapter", "name": adapter},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": metric, "selector": {"matchLabels": match_labels}},
                "target": {"type": "AverageValue", "averageValue": average_value}}}]}
    if behavior:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": spec}
