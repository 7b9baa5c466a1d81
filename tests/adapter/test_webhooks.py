"""The adapter's conversion and validating webhooks through the real kube-apiserver and kubectl."""

from __future__ import annotations

import json

import pytest
from adapter_process import AdapterProcess
from helpers import wait_for

from adapter import webhook
from devcluster import certs
from devcluster.kubectl import KubectlError
from devcluster.procs import free_port

pytestmark = pytest.mark.cluster

CRDS = ("dynamographdeployments.nvidia.com", "dynamographdeploymentscalingadapters.nvidia.com")


@pytest.fixture()
def serving_cert(tmp_path):
    ca = certs.make_ca(tmp_path, "webhook-ca", "webhook-ca")
    pair = certs.issue(ca, tmp_path, "webhook", "dynamo-scaling-adapter", dns=("localhost",), ips=("127.0.0.1",),
                       server=True)
    return ca.cert.read_text(), pair


@pytest.fixture()
def webhook_port():
    return free_port()


def start_adapter(cluster, namespace, kubeconfig, tmp_path, port=None, pair=None) -> AdapterProcess:
    extra = () if port is None else ("--webhook-port", str(port), "--webhook-bind-address", "127.0.0.1",
                                     "--webhook-cert-file", str(pair.cert), "--webhook-key-file", str(pair.key))
    return AdapterProcess(cluster, namespace, kubeconfig, tmp_path, extra_args=extra).start()


@pytest.fixture()
def both_versions(kubectl, serving_cert, webhook_port):
    """Both CRDs serve v1beta1, converted by the adapter's webhook; restored afterwards so the
    rest of the session keeps the default (v1alpha1 only, no webhook)."""
    ca_pem, _ = serving_cert
    patch = webhook.conversion_patch(ca_pem, url=f"https://127.0.0.1:{webhook_port}")
    for crd in CRDS:
        kubectl("patch", "crd", crd, "--type=json", "-p", json.dumps([
            {"op": "replace", "path": "/spec/versions/1/served", "value": True}]))
        kubectl("patch", "crd", crd, "--type=merge", "-p", json.dumps(patch))
    yield
    for crd in CRDS:
        kubectl("patch", "crd", crd, "--type=merge", "-p",
                json.dumps({"spec": {"conversion": {"strategy": "None", "webhook": None}}}))
        kubectl("patch", "crd", crd, "--type=json", "-p", json.dumps([
            {"op": "replace", "path": "/spec/versions/1/served", "value": False}]))
    # the next test starts on a settled API: v1beta1 gone from discovery again
    wait_for(lambda: "nvidia.com/v1beta1" not in kubectl("api-versions").split(), what="v1beta1 no longer served")


@pytest.fixture()
def converting_adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path, both_versions, serving_cert,
                       webhook_port):
    proc = start_adapter(cluster, namespace, adapter_kubeconfig, tmp_path, webhook_port, serving_cert[1])
    yield proc
    proc.stop()


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
