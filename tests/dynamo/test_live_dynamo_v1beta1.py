"""The live Dynamo path with v1beta1 objects end to end: a DGD written as nvidia.com/v1beta1
(components with `type: prefill` / `type: decode`, as current Dynamo writes them) is stored
through the adapter's conversion webhook, the stand-in operator runs real Dynamo frontend and
mocker processes for it, and `kubectl scale` on the v1beta1 DGDSA starts and stops real workers."""

from __future__ import annotations

import httpx
import pytest
from helpers import wait_for
from webhook_support import converting_adapter

from devcluster import manifests
from devcluster.dynamo.model import MODEL_NAME, prompt_of
from devcluster.dynamo.processes import registered_instances
from devcluster.scenario import dgd_ready

pytestmark = pytest.mark.cluster

DGD = "dynamographdeployments.v1beta1.nvidia.com"
DGDSA = "dynamographdeploymentscalingadapters.v1beta1.nvidia.com"


def dgd_v1beta1(name: str) -> dict:
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": name, "annotations": {manifests.ANNOTATION_STARTUP: "2"}},
            "spec": {"components": [
                {"name": "Frontend", "type": "frontend", "replicas": 1},
                {"name": "prefill", "type": "prefill", "replicas": 1, "scalingAdapter": {}},
                {"name": "decode", "type": "decode", "replicas": 1, "scalingAdapter": {}}]}}


def component_replicas(kubectl, ns: str, name: str, component: str) -> int | None:
    d = kubectl.json("-n", ns, "get", DGD, name)
    return next(c for c in d["spec"]["components"] if c["name"] == component).get("replicas")


def test_v1beta1_dgd_runs_live_and_scales_through_its_v1beta1_adapter(
        cluster, kubectl, namespace, adapter_kubeconfig, live_dynamo, tmp_path):
    name, dns = "beta", f"{namespace}-beta"
    with converting_adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path):
        kubectl.apply([dgd_v1beta1(name)], namespace)
        wait_for(lambda: dgd_ready(kubectl, namespace, name), timeout=60, what="DGD Ready")
        # the roles came from v1beta1 `type`: one prefill and one decode worker registered
        wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "prefill") == 1
                 and registered_instances(live_dynamo.discovery_dir, dns, "decode") == 1,
                 timeout=30, what="1 prefill + 1 decode worker registered")
        url = f"http://{wait_for(lambda: live_dynamo.address_of('Frontend'), what='frontend target')}"
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model listed")
        r = httpx.post(f"{url}/v1/completions", timeout=30,
                       json={"model": MODEL_NAME, "prompt": prompt_of(200), "max_tokens": 8})
        assert r.status_code == 200, r.text

        # the adapter the controller made, read as v1beta1, scales the DGD component and its workers
        a = wait_for(lambda: kubectl.run("-n", namespace, "get", DGDSA, f"{name}-decode", check=False).returncode == 0
                     and kubectl.json("-n", namespace, "get", DGDSA, f"{name}-decode"), what="decode adapter")
        assert a["apiVersion"] == "nvidia.com/v1beta1"
        assert a["spec"]["dgdRef"] == {"name": name, "componentName": "decode"}
        kubectl("-n", namespace, "scale", DGDSA, f"{name}-decode", "--replicas=2")
        wait_for(lambda: component_replicas(kubectl, namespace, name, "decode") == 2, what="DGD component at 2")
        wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "decode") == 2,
                 timeout=60, what="2 registered decode workers")
        wait_for(lambda: kubectl.json("-n", namespace, "get", DGDSA, f"{name}-decode")
                 .get("status", {}).get("readyReplicas") == 2, what="adapter reports 2 ready")
        kubectl("-n", namespace, "scale", DGDSA, f"{name}-decode", "--replicas=1")
        wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "decode") == 1,
                 timeout=60, what="back to 1 decode worker")
        assert kubectl.json("-n", namespace, "get", DGD, name)["apiVersion"] == "nvidia.com/v1beta1"
    kubectl.run("delete", "clusterrole,clusterrolebinding", f"{namespace}-adapter", check=False)
