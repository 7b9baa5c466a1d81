"""A KEDA ScaledObject aimed at an adapter counts as one of its scalers: the controller's index of
ScaledObjects picks it up, also when KEDA's CRD is installed after the controller started."""

from __future__ import annotations

import pytest
from helpers import wait_for
from test_adapter_controller import adapter_exists, cond, dgd, get_adapter

from devcluster.kubectl import KubectlError

CRD = "scaledobjects.keda.sh"
# the ScaledObject resource only (no KEDA operator): what the controller watches
SCALEDOBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": CRD},
    "spec": {"group": "keda.sh", "scope": "Namespaced",
             "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject",
                       "listKind": "ScaledObjectList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
REF = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter", "name": "llama-prefill"}


@pytest.fixture()
def scaledobject_crd(kubectl):
    """KEDA's ScaledObject CRD; a real one already installed (by the KEDA tests) is left alone."""
    try:
        kubectl("get", "crd", CRD)
        yield
        return
    except KubectlError:
        pass
    kubectl.apply(SCALEDOBJECT_CRD)
    kubectl("wait", "--for=condition=Established", "crd", CRD)
    yield
    kubectl.run("delete", "crd", CRD, check=False)


def test_scaledobject_beside_an_hpa_is_a_conflict(kubectl, namespace, adapter, scaledobject_crd):
    kubectl.apply(dgd(), namespace)
    wait_for(lambda: adapter_exists(kubectl, namespace, "llama-prefill"), what="adapter")
    wait_for(lambda: get_adapter(kubectl, namespace, "llama-prefill").get("status", {}).get("selector"),
             what="adapter reconciled")
    kubectl.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa-a"},
                   "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 4,
                            "metrics": [{"type": "External", "external": {"metric": {"name": "dynamo_queue_depth"},
                                         "target": {"type": "AverageValue", "averageValue": "5"}}}]}}, namespace)
    kubectl.apply({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "so-a"},
                   "spec": {"scaleTargetRef": {"kind": REF["kind"], "name": REF["name"]},
                            "triggers": [{"type": "cpu", "metadata": {"value": "50"}}]}}, namespace)
    a = wait_for(lambda: (x := get_adapter(kubectl, namespace, "llama-prefill")) and
                 cond(x, "ScalingActive").get("reason") == "ConflictingScalers" and x, what="conflict condition")
    message = cond(a, "ScalingActive")["message"]
    assert "ScaledObject/so-a" in message and "HorizontalPodAutoscaler/hpa-a" in message
    kubectl("-n", namespace, "delete", "scaledobject", "so-a")
    wait_for(lambda: cond(get_adapter(kubectl, namespace, "llama-prefill"), "ScalingActive").get("reason")
             != "ConflictingScalers", what="conflict cleared")
