"""The chart installed for real by helm into a real control plane of its own (both modes), after
a server-side dry run of every rendered object with strict field validation."""

from __future__ import annotations

import json

import pytest

from helm_chart_helpers import CHART, DATA, REPO, kubectl_dry_run

pytestmark = pytest.mark.cluster

FULL = DATA / "values-full.yaml"
OPERATOR = REPO / "examples" / "helm" / "values-dynamo-operator.yaml"
CRD_NAMES = ("dynamographdeployments.nvidia.com", "dynamographdeploymentscalingadapters.nvidia.com")


def _apply_crds(kubectl, *paths):
    for p in paths:
        kubectl("apply", "--server-side", "-f", str(p))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")


def _status(helm, release, ns) -> str:
    return json.loads(helm("status", release, "-n", ns, "-o", "json"))["info"]["status"]


def test_standalone_install_upgrade_uninstall(private_helm, private_kubectl, render):
    k = private_kubectl
    _apply_crds(k, DATA / "monitoring-servicemonitor-crd.yaml")
    k("create", "namespace", "dynamo-scaling")

    manifest = render.text(values=[FULL], release="ds", namespace="dynamo-scaling")
    dry = kubectl_dry_run(k, manifest)
    assert dry.returncode == 0, dry.stderr
    assert "server dry run" in dry.stdout

    private_helm("install", "ds", str(CHART), "-n", "dynamo-scaling", "-f", str(FULL), "--timeout", "60s")
    assert _status(private_helm, "ds", "dynamo-scaling") == "deployed"

    for crd in CRD_NAMES:
        got = k.json("get", "crd", crd)
        assert any(c["type"] == "Established" and c["status"] == "True" for c in got["status"]["conditions"])
        assert got["metadata"]["annotations"]["meta.helm.sh/release-name"] == "ds"
    deployments = {d["metadata"]["name"] for d in k.json("get", "deployments", "-n", "dynamo-scaling")["items"]}
    assert deployments == {"ds-dynamo-scaling-adapter", "ds-dynamo-scaling-metrics-server", "ds-dynamo-scaling-planner"}
    for kind in ("pdb", "servicemonitor", "networkpolicy", "configmap", "secret", "service", "serviceaccount", "role", "rolebinding"):
        assert k.json("get", kind, "-n", "dynamo-scaling", "-l", "app.kubernetes.io/instance=ds")["items"], kind
    api = k.json("get", "apiservice", "v1beta1.external.metrics.k8s.io")
    ca_before = api["spec"]["caBundle"]
    assert api["spec"]["service"]["name"] == "ds-dynamo-scaling-metrics-server"
    assert not api["spec"].get("insecureSkipTLSVerify")
    assert k.json("get", "rolebinding", "ds-dynamo-scaling-metrics-server-auth-reader", "-n", "kube-system")

    # an upgrade keeps the generated serving CA (looked up from the cluster), so HPA keeps working
    private_helm("upgrade", "ds", str(CHART), "-n", "dynamo-scaling", "-f", str(FULL),
                 "--set", "metricsServer.replicas=3", "--timeout", "60s")
    assert k.json("get", "apiservice", "v1beta1.external.metrics.k8s.io")["spec"]["caBundle"] == ca_before
    assert k.json("get", "deployment", "ds-dynamo-scaling-metrics-server", "-n", "dynamo-scaling")["spec"]["replicas"] == 3

    private_helm("uninstall", "ds", "-n", "dynamo-scaling", "--timeout", "60s")
    assert k.run("get", "apiservice", "v1beta1.external.metrics.k8s.io", check=False).returncode != 0
    assert not k.json("get", "clusterroles", "-l", "app.kubernetes.io/instance=ds")["items"]
    # the CRDs (and every DGD / DGDSA) survive an uninstall
    for crd in CRD_NAMES:
        k("get", "crd", crd)


def test_beside_dynamo_operator_install(private_helm, private_kubectl, render):
    k = private_kubectl
    # Dynamo's operator owns the CRDs in this mode
    _apply_crds(k, REPO / "crds", DATA / "cert-manager-crds.yaml")
    k("create", "namespace", "dynamo")
    k("create", "namespace", "dynamo-keda")

    # cert-manager variant: validated by the API server (server-side dry run)
    manifest = render.text(values=[OPERATOR], release="ds", namespace="dynamo",
                           sets={"metricsServer.tls.mode": "certManager"})
    dry = kubectl_dry_run(k, manifest)
    assert dry.returncode == 0, dry.stderr

    private_helm("install", "ds", str(CHART), "-n", "dynamo", "-f", str(OPERATOR), "--timeout", "60s")
    assert _status(private_helm, "ds", "dynamo") == "deployed"
    deployments = {d["metadata"]["name"] for d in k.json("get", "deployments", "-n", "dynamo")["items"]}
    assert deployments == {"ds-dynamo-scaling-metrics-server", "ds-dynamo-scaling-planner"}
    k("get", "serviceaccount", "planner-serviceaccount", "-n", "dynamo")
    for crd in CRD_NAMES:
        annotations = k.json("get", "crd", crd)["metadata"].get("annotations", {})
        assert "meta.helm.sh/release-name" not in annotations, "the chart must not take over Dynamo's CRDs"

    # A second release where KEDA owns the APIService coexists: no cluster-scoped name clashes.
    private_helm("install", "keda-side", str(CHART), "-n", "dynamo-keda", "--set", "crds.install=false",
                 "--set", "adapter.enabled=false", "--set", "metricsServer.apiService.enabled=false",
                 "--timeout", "60s")
    assert k.json("get", "apiservice", "v1beta1.external.metrics.k8s.io")["metadata"]["annotations"][
        "meta.helm.sh/release-name"] == "ds"

    private_helm("uninstall", "keda-side", "-n", "dynamo-keda", "--timeout", "60s")
    private_helm("uninstall", "ds", "-n", "dynamo", "--timeout", "60s")
    for crd in CRD_NAMES:
        k("get", "crd", crd)
