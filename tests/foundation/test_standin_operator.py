"""The stand-in operator turns DGD services into Ready, labelled pods and follows changes."""

from __future__ import annotations

import json

import pytest
from helpers import wait_for

pytestmark = pytest.mark.cluster

DGD = {
    "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
    "metadata": {"name": "llama"},
    "spec": {"services": {
        "Frontend": {"componentType": "frontend", "replicas": 1},
        "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 2},
        "decode": {"componentType": "worker", "subComponentType": "decode", "replicas": 1},
    }},
}


def _ready_pods(kubectl, ns: str, service: str) -> list[dict]:
    pods = kubectl.json("-n", ns, "get", "pods", "-l",
                        f"nvidia.com/dynamo-graph-deployment-name=llama,nvidia.com/dynamo-component={service}")
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))]


def test_dgd_comes_up_with_labelled_ready_pods(kubectl, namespace, standin):
    kubectl.apply(DGD, namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state")
             == "successful", what="DGD successful")
    for svc, n in (("Frontend", 1), ("prefill", 2), ("decode", 1)):
        pods = _ready_pods(kubectl, namespace, svc)
        assert len(pods) == n
        labels = pods[0]["metadata"]["labels"]
        assert labels["nvidia.com/dynamo-namespace"] == f"{namespace}-llama"
        assert labels["nvidia.com/dynamo-component-type"] == DGD["spec"]["services"][svc]["componentType"]
        assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "DynamoGraphDeployment"
    status = kubectl.json("-n", namespace, "get", "dgd", "llama")["status"]
    assert status["services"]["prefill"]["readyReplicas"] == 2
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"]


def test_follows_replica_changes(kubectl, namespace, standin):
    kubectl.apply(DGD, namespace)
    wait_for(lambda: len(_ready_pods(kubectl, namespace, "decode")) == 1, what="1 decode pod")
    kubectl("-n", namespace, "patch", "dgd", "llama", "--type=merge",
            "-p", json.dumps({"spec": {"services": {"decode": {"replicas": 3}}}}))
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama")["status"]["services"]["decode"]
             ["readyReplicas"] == 3, what="3 ready decode replicas in status")
    assert len(_ready_pods(kubectl, namespace, "decode")) == 3
    kubectl("-n", namespace, "patch", "dgd", "llama", "--type=merge",
            "-p", json.dumps({"spec": {"services": {"decode": {"replicas": 0}}}}))
    wait_for(lambda: not kubectl.json("-n", namespace, "get", "pods", "-l",
                                      "nvidia.com/dynamo-component=decode")["items"],
             what="decode pods removed")
    st = kubectl.json("-n", namespace, "get", "dgd", "llama")["status"]
    assert st["services"]["decode"]["replicas"] == 0 and st["state"] == "successful"
