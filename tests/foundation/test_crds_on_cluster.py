"""The CRDs on the real API server, driven through the real kubectl."""

from __future__ import annotations

import json

import pytest

from devcluster.kubectl import KubectlError

pytestmark = pytest.mark.cluster


def _dgdsa(name: str, replicas: object = 1, dgd: str = "llama", service: str | None = "decode") -> dict:
    ref = {"name": dgd}
    if service is not None:
        ref["serviceName"] = service
    return {
        "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "dgdRef": ref},
    }


def test_crds_apply_and_get_shows_columns(kubectl, namespace, repo_root):
    out = kubectl("apply", "-f", str(repo_root / "crds"))
    assert "dynamographdeploymentscalingadapters.nvidia.com" in out
    kubectl.apply(_dgdsa("llama-decode", 2), namespace)
    kubectl("-n", namespace, "patch", "dgdsa", "llama-decode", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"replicas": 2}}))
    table = kubectl("-n", namespace, "get", "dgdsa")
    header, row = table.strip().splitlines()
    assert header.split() == ["NAME", "DGD", "SERVICE", "REPLICAS", "AGE"]
    assert row.split()[:4] == ["llama-decode", "llama", "decode", "2"]
    # categories: `kubectl get dynamo` lists adapters and DGDs
    assert "llama-decode" in kubectl("-n", namespace, "get", "dynamo")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_dgdsa("bad-replicas", -1), "spec.replicas"),
        (_dgdsa("no-service", 1, service=None), "spec.dgdRef.serviceName"),
        (_dgdsa("empty-service", 1, service=""), "spec.dgdRef.serviceName"),
        (_dgdsa("bad-dgd-name", 1, dgd="Not_A_Name"), "spec.dgdRef.name"),
        (_dgdsa("string-replicas", "three"), "spec.replicas"),
    ],
)
def test_invalid_adapters_are_rejected_naming_the_field(kubectl, namespace, body, field):
    with pytest.raises(KubectlError) as err:
        kubectl.apply(body, namespace)
    assert field in err.value.stderr
    assert body["metadata"]["name"] not in kubectl("-n", namespace, "get", "dgdsa", "-o", "name")


def test_dgd_ref_is_immutable(kubectl, namespace):
    kubectl.apply(_dgdsa("llama-prefill", 1, service="prefill"), namespace)
    with pytest.raises(KubectlError) as err:
        kubectl.apply(_dgdsa("llama-prefill", 1, service="decode"), namespace)
    assert "spec.dgdRef" in err.value.stderr and "immutable" in err.value.stderr
    got = kubectl.json("-n", namespace, "get", "dgdsa", "llama-prefill")
    assert got["spec"]["dgdRef"]["serviceName"] == "prefill"


def test_scale_subresource(kubectl, namespace):
    kubectl.apply(_dgdsa("llama-decode", 1), namespace)
    selector = "nvidia.com/dynamo-graph-deployment-name=llama,nvidia.com/dynamo-component=decode"
    kubectl("-n", namespace, "patch", "dgdsa", "llama-decode", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"replicas": 1, "selector": selector}}))
    kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=3")
    assert kubectl.json("-n", namespace, "get", "dgdsa", "llama-decode")["spec"]["replicas"] == 3
    scale = json.loads(kubectl("get", "--raw",
        f"/apis/nvidia.com/v1alpha1/namespaces/{namespace}/dynamographdeploymentscalingadapters/llama-decode/scale"))
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 3
    assert scale["status"] == {"replicas": 1, "selector": selector}
    with pytest.raises(KubectlError):
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=-2")


def test_dgd_accepts_real_dynamo_fields(kubectl, namespace):
    dgd = {
        "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
        "metadata": {"name": "llama"},
        "spec": {
            "backendFramework": "vllm",
            "envs": [{"name": "HF_HOME", "value": "/cache"}],
            "services": {
                "Frontend": {"componentType": "frontend", "replicas": 1, "dynamoNamespace": "llama"},
                "VllmDecodeWorker": {
                    "componentType": "worker", "subComponentType": "decode", "replicas": 2,
                    "scalingAdapter": {"enabled": True},
                    "resources": {"limits": {"gpu": "1"}},
                    "extraPodSpec": {"mainContainer": {"image": "nvcr.io/x/vllm-runtime:0.6.1",
                                                       "args": ["python3", "-m", "dynamo.vllm"]}},
                },
            },
        },
    }
    kubectl.apply(dgd, namespace)
    got = kubectl.json("-n", namespace, "get", "dgd", "llama")
    assert got["spec"]["backendFramework"] == "vllm"
    assert got["spec"]["services"]["VllmDecodeWorker"]["extraPodSpec"]["mainContainer"]["args"][-1] == "dynamo.vllm"
    assert got["spec"]["services"]["Frontend"].get("scalingAdapter", {}).get("enabled", False) is False
    bad = json.loads(json.dumps(dgd))
    bad["spec"]["services"]["VllmDecodeWorker"]["multinode"] = {"nodeCount": 1}
    with pytest.raises(KubectlError) as err:
        kubectl.apply(bad, namespace)
    assert "nodeCount" in err.value.stderr
