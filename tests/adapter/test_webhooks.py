"""The adapter's conversion and validating webhooks through the real kube-apiserver and kubectl
(fixtures: tests/adapter/conftest.py)."""

from __future__ import annotations

import pytest
from adapter_process import AdapterProcess
from helpers import wait_for
from webhook_support import webhook_args

pytestmark = pytest.mark.cluster


def start_adapter(cluster, namespace, kubeconfig, tmp_path, port=None, pair=None) -> AdapterProcess:
    extra = () if port is None else webhook_args(port, pair)
    return AdapterProcess(cluster, namespace, kubeconfig, tmp_path, extra_args=extra).start()


def dgd_v1alpha1(replicas: int = 1) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"backendFramework": "vllm", "futureField": {"keep": [1, 2]}, "services": {
                "Frontend": {"componentType": "frontend", "replicas": 1, "extraPodSpec": {"x": "y"}},
                "decode": {"componentType": "decode", "replicas": replicas, "scalingAdapter": {"enabled": True},
                           "resources": {"limits": {"gpu": "1"}}}}}}


def dgd_v1beta1(replicas: int = 1) -> dict:
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"backendFramework": "vllm", "futureField": {"keep": [1, 2]}, "components": [
                {"name": "decode", "type": "decode", "replicas": replicas, "scalingAdapter": {},
                 "podTemplate": {"spec": {"containers": [{"name": "main", "image": "w"}]}}},
                {"name": "Frontend", "type": "frontend", "replicas": 1}]}}


def get(kubectl, ns: str, resource: str, version: str, name: str) -> dict:
    return kubectl.json("-n", ns, "get", f"{resource}.{version}.nvidia.com", name)


def test_conversion_round_trip_keeps_every_field(kubectl, namespace, converting_adapter):
    kubectl.apply(dgd_v1alpha1(3), namespace)
    beta = get(kubectl, namespace, "dynamographdeployments", "v1beta1", "llama")
    assert beta["apiVersion"] == "nvidia.com/v1beta1"
    comps = {c["name"]: c for c in beta["spec"]["components"]}
    assert comps["decode"]["type"] == "decode" and comps["decode"]["replicas"] == 3
    assert comps["decode"]["scalingAdapter"] == {} and "scalingAdapter" not in comps["Frontend"]
    assert comps["Frontend"]["extraPodSpec"] == {"x": "y"} and beta["spec"]["futureField"] == {"keep": [1, 2]}
    alpha = get(kubectl, namespace, "dynamographdeployments", "v1alpha1", "llama")
    assert alpha["spec"] == dgd_v1alpha1(3)["spec"]
    # and the other way: written as v1beta1, read as v1alpha1 and back
    kubectl("-n", namespace, "delete", "dgd", "llama", "--wait=true")
    kubectl.apply(dgd_v1beta1(2), namespace)
    alpha = get(kubectl, namespace, "dynamographdeployments", "v1alpha1", "llama")
    assert alpha["spec"]["services"]["decode"] == {
        "componentType": "decode", "replicas": 2, "scalingAdapter": {"enabled": True},
        "podTemplate": {"spec": {"containers": [{"name": "main", "image": "w"}]}}}
    assert get(kubectl, namespace, "dynamographdeployments", "v1beta1", "llama")["spec"] == dgd_v1beta1(2)["spec"]
    # adapters: serviceName <-> componentName
    a = wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llama-decode", check=False).returncode == 0
                 and get(kubectl, namespace, "dynamographdeploymentscalingadapters", "v1beta1", "llama-decode"),
                 what="adapter created")
    assert a["spec"]["dgdRef"] == {"name": "llama", "componentName": "decode"}
    a1 = get(kubectl, namespace, "dynamographdeploymentscalingadapters", "v1alpha1", "llama-decode")
    assert a1["spec"]["dgdRef"] == {"name": "llama", "serviceName": "decode"}


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_scale_contract_in_either_version(kubectl, namespace, converting_adapter, version):
    """kubectl scale on the adapter reaches the DGD, whichever version the DGD was written in."""
    kubectl.apply(dgd_v1alpha1() if version == "v1alpha1" else dgd_v1beta1(), namespace)
    wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llama-decode", check=False).returncode == 0,
             what="adapter created")
    kubectl("-n", namespace, "scale", f"dynamographdeploymentscalingadapters.{version}.nvidia.com", "llama-decode",
            "--replicas=4")

    def in_dgd() -> int | None:
        d = get(kubectl, namespace, "dynamographdeployments", version, "llama")
        if version == "v1alpha1":
            return d["spec"]["services"]["decode"].get("replicas")
        return next(c for c in d["spec"]["components"] if c["name"] == "decode").get("replicas")

    wait_for(lambda: in_dgd() == 4, what="DGD component at 4")
    a = wait_for(lambda: (x := get(kubectl, namespace, "dynamographdeploymentscalingadapters", version,
                                   "llama-decode")).get("status", {}).get("replicas") == 4 and x,
                 what="status.replicas 4")
    assert a["status"]["selector"] == \
        "nvidia.com/dynamo-graph-deployment-name=llama,nvidia.com/dynamo-component=decode"
    header = kubectl("-n", namespace, "get", f"dynamographdeploymentscalingadapters.{version}.nvidia.com").split()
    assert ("COMPONENT" if version == "v1beta1" else "SERVICE") in header
