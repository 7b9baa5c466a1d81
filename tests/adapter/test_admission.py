"""The validating admission webhook through the real kube-apiserver and kubectl, and the
controller's revert backstop when the webhook is down."""

from __future__ import annotations

import json

import pytest
from helpers import wait_for
from test_webhooks import dgd_v1alpha1, get, start_adapter

from adapter import webhook
from devcluster.kubectl import KubectlError

pytestmark = pytest.mark.cluster


@pytest.fixture()
def validating(kubectl, namespace, serving_cert, webhook_port):
    ca_pem, _ = serving_cert
    cfg = webhook.validating_configuration(
        f"{namespace}-dynamo-scaling", ca_pem, url=f"https://127.0.0.1:{webhook_port}",
        namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": namespace}})
    kubectl.apply(cfg)
    yield cfg
    kubectl.run("delete", "validatingwebhookconfiguration", cfg["metadata"]["name"], check=False)


def decode_replicas(kubectl, ns: str) -> int:
    return kubectl.json("-n", ns, "get", "dgd", "llama")["spec"]["services"]["decode"]["replicas"]


def refused(kubectl, *args: str) -> str:
    try:
        kubectl(*args)
    except KubectlError as exc:
        return str(exc)
    return ""


def test_direct_edit_refused_and_backstop_without_webhook(cluster, kubectl, namespace, adapter_kubeconfig,
                                                          tmp_path, serving_cert, webhook_port, validating):
    proc = start_adapter(cluster, namespace, adapter_kubeconfig, tmp_path, webhook_port, serving_cert[1])
    try:
        kubectl.apply(dgd_v1alpha1(), namespace)
        wait_for(lambda: (kubectl.run("-n", namespace, "get", "dgdsa", "llama-decode", check=False).returncode == 0
                          and get(kubectl, namespace, "dynamographdeploymentscalingadapters", "v1alpha1",
                                  "llama-decode").get("status", {}).get("replicas") == 1), what="adapter synced")
        edit = json.dumps({"spec": {"services": {"decode": {"replicas": 7}}}})
        msg = wait_for(lambda: refused(kubectl, "-n", namespace, "patch", "dgd", "llama", "--type=merge", "-p", edit),
                       what="the edit refused")
        assert "denied the request" in msg and "llama-decode" in msg and "kubectl scale dgdsa" in msg
        assert decode_replicas(kubectl, namespace) == 1
        # the adapter's own writes pass: scaling the adapter changes the DGD
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=2")
        wait_for(lambda: decode_replicas(kubectl, namespace) == 2, what="adapter write admitted")
        # unknown service, duplicate adapter, scale-to-zero of a multinode service
        bad = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
               "metadata": {"name": "other"}, "spec": {"replicas": 1, "dgdRef": {"name": "llama", "serviceName": "nope"}}}
        with pytest.raises(KubectlError, match="nope"):
            kubectl.apply(bad, namespace)
        bad["spec"]["dgdRef"]["serviceName"] = "decode"
        with pytest.raises(KubectlError, match="already has the adapter llama-decode"):
            kubectl.apply(bad, namespace)
        kubectl("-n", namespace, "patch", "dgd", "llama", "--type=merge", "-p",
                json.dumps({"spec": {"services": {"decode": {"multinode": {"nodeCount": 2}}}}}))
        with pytest.raises(KubectlError, match="multinode"):
            kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=0")
    finally:
        proc.stop()
    # the webhook is down (failurePolicy Ignore): the edit goes through and the controller reverts it
    backstop = start_adapter(cluster, namespace, adapter_kubeconfig, tmp_path)
    try:
        kubectl("-n", namespace, "patch", "dgd", "llama", "--type=merge", "-p", edit)
        wait_for(lambda: decode_replicas(kubectl, namespace) == 2, what="edit reverted by the controller")
        assert any(e["reason"] == "DirectEditReverted" for e in kubectl.json("-n", namespace, "get", "events")["items"])
    finally:
        backstop.stop()
