"""The chart installed by helm into a control plane of its own, the adapter run as a real process
with the chart's ServiceAccount token and the chart's generated serving certificate: the
installed CRDs serve v1beta1 through the adapter's conversion webhook, and the installed
ValidatingWebhookConfiguration refuses a direct replica edit. The cluster has no kubelet, so the
webhook Service is replaced by an ExternalName `localhost` on the same port (as the metrics
server's APIService test does)."""

from __future__ import annotations

import base64
import json

import pytest
from adapter_process import AdapterProcess
from helm_chart_helpers import CHART, DATA, kubectl_dry_run
from helpers import wait_for

from devcluster.controlplane import write_kubeconfig
from devcluster.kubectl import KubectlError
from devcluster.procs import free_port

pytestmark = pytest.mark.cluster

NS, APPS = "dynamo-scaling", "llm"
SVC = "ds-dynamo-scaling-adapter-webhook"


def dgd_v1beta1() -> dict:
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"components": [{"name": "decode", "type": "decode", "replicas": 1, "scalingAdapter": {}},
                                    {"name": "Frontend", "type": "frontend", "replicas": 1}]}}


def component_replicas(kubectl, name: str = "decode") -> int | None:
    d = kubectl.json("-n", APPS, "get", "dynamographdeployments.v1beta1.nvidia.com", "llama")
    return next(c for c in d["spec"]["components"] if c["name"] == name).get("replicas")


def test_installed_adapter_serves_conversion_and_admission(private_helm, private_kubectl, private_cluster, tmp_path):
    k = private_kubectl
    k("create", "namespace", NS)
    k("create", "namespace", APPS)
    port = free_port()
    # the Service port is the process's port, so the ExternalName stand-in needs no port mapping
    private_helm("install", "ds", str(CHART), "-n", NS, "--set", "metricsServer.enabled=false",
                 "--set", f"adapter.webhook.port={port}", "--set", f"adapter.webhook.servicePort={port}",
                 "--timeout", "60s")
    for crd in ("dynamographdeployments.nvidia.com", "dynamographdeploymentscalingadapters.nvidia.com"):
        assert k.json("get", "crd", crd)["spec"]["conversion"]["strategy"] == "Webhook"
    assert "nvidia.com/v1beta1" in k("api-versions").split()

    k("-n", NS, "delete", "service", SVC)
    k.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": SVC, "namespace": NS},
             "spec": {"type": "ExternalName", "externalName": "localhost",
                      "ports": [{"name": "webhook", "port": port, "protocol": "TCP"}]}})
    tls = k.json("-n", NS, "get", "secret", "ds-dynamo-scaling-adapter-webhook-tls")["data"]
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(base64.b64decode(tls["tls.crt"]))
    key.touch(mode=0o600)
    key.write_bytes(base64.b64decode(tls["tls.key"]))
    token = k("-n", NS, "create", "token", "ds-dynamo-scaling-adapter", "--duration=1h").strip()
    kubeconfig = write_kubeconfig(private_cluster, tmp_path / "adapter.kubeconfig", user="adapter", token=token)
    proc = AdapterProcess(private_cluster, APPS, kubeconfig, tmp_path, extra_args=(
        "--webhook-port", str(port), "--webhook-bind-address", "127.0.0.1",
        "--webhook-cert-file", str(crt), "--webhook-key-file", str(key))).start()
    try:
        # written as v1beta1, stored as v1alpha1: both reads go through the conversion webhook
        k.apply(dgd_v1beta1(), APPS)
        alpha = k.json("-n", APPS, "get", "dynamographdeployments.v1alpha1.nvidia.com", "llama")
        assert alpha["spec"]["services"]["decode"] == {"componentType": "decode", "replicas": 1,
                                                       "scalingAdapter": {"enabled": True}}
        assert component_replicas(k) == 1
        # the adapter (chart RBAC) creates the adapter and carries a v1beta1 scale into the DGD
        wait_for(lambda: k.run("-n", APPS, "get", "dgdsa", "llama-decode", check=False).returncode == 0,
                 what="adapter created")
        a = k.json("-n", APPS, "get", "dynamographdeploymentscalingadapters.v1beta1.nvidia.com", "llama-decode")
        assert a["spec"]["dgdRef"] == {"name": "llama", "componentName": "decode"}
        k("-n", APPS, "scale", "dynamographdeploymentscalingadapters.v1beta1.nvidia.com", "llama-decode",
          "--replicas=3")
        wait_for(lambda: component_replicas(k) == 3, what="DGD component at 3")

        # the installed ValidatingWebhookConfiguration refuses a direct edit of adapted replicas
        patch = [{"op": "replace", "path": "/spec/services/decode/replicas", "value": 5}]
        with pytest.raises(KubectlError) as exc:
            k("-n", APPS, "patch", "dynamographdeployments.v1alpha1.nvidia.com", "llama", "--type=json",
              "-p", json.dumps(patch))
        assert "kubectl scale dgdsa llama-decode" in exc.value.stderr, exc.value.stderr
        assert component_replicas(k) == 3
    finally:
        proc.stop()
        # nothing may call a webhook that is gone while helm uninstalls
        k.run("delete", "validatingwebhookconfiguration", SVC, "--ignore-not-found", check=False)


def test_cert_manager_and_given_secret_variants_pass_server_validation(private_kubectl, render):
    """The variants not installed above, validated object by object by a real API server (strict
    server-side dry run; cert-manager's CRDs from tests/helm/data)."""
    k = private_kubectl
    k("apply", "--server-side", "-f", str(DATA / "cert-manager-crds.yaml"))
    k("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
    k("create", "namespace", NS)
    k("create", "namespace", APPS)  # the watched namespace's RoleBinding lives there
    for sets in ({"adapter.webhook.certManager.enabled": "true"},
                 {"adapter.webhook.certManager.enabled": "true", "adapter.webhook.certManager.issuerName": "corp",
                  "adapter.webhook.certManager.issuerKind": "ClusterIssuer", "adapter.watchNamespaces": "{llm}"},
                 {"adapter.webhook.certSecret": "mine", "adapter.webhook.caBundle": base64.b64encode(b"x").decode(),
                  "adapter.webhook.failurePolicy": "Fail"}):
        dry = kubectl_dry_run(k, render.text(release="ds", namespace=NS, sets=sets))
        assert dry.returncode == 0, (sets, dry.stderr)
