"""The chart's planner RBAC against the real API server: a planner whose DGD lives in another
namespace than the release keeps its state, records Events and scales there under its own
ServiceAccount; the write role is not part of the built-in `edit` role unless asked for, and
going past the planner's limits is a role of its own."""

from __future__ import annotations

import json

import pytest
from helm_chart_helpers import ensure_keda_crd
from test_helm_rbac import RBAC_KINDS, can

pytestmark = pytest.mark.cluster


def may(kubectl, user: str, verb: str, ns: str) -> bool:
    """SubjectAccessReview on planners.scaling.dynamo-scaling.io, as the planner asks it (the
    resource is virtual: `kubectl auth can-i` would warn that the server does not serve it)."""
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
        "resourceAttributes": {"group": "scaling.dynamo-scaling.io", "resource": "planners", "verb": verb,
                               "namespace": ns, "name": "llama"}}}
    out = kubectl.run("create", "-o", "json", "-f", "-", input=json.dumps(sar))
    return json.loads(out.stdout)["status"].get("allowed", False) is True


@pytest.fixture()
def planner_rbac(render, kubectl, namespace, dgd_namespace):
    """The chart's RBAC for a release in `namespace` whose planner drives DGD llama in `dgd_namespace`."""
    ensure_keda_crd(kubectl)
    docs = render.docs(release=namespace, namespace=namespace, sets={
        "planner.enabled": "true", "planner.deployment.name": "llama",
        "planner.deployment.namespace": dgd_namespace})
    objs = [d for d in docs if d["kind"] in RBAC_KINDS]
    kubectl.apply(objs)
    yield {"release": namespace, "sa_name": f"{namespace}-dynamo-scaling-planner",
           "sa": f"system:serviceaccount:{namespace}:{namespace}-dynamo-scaling-planner"}
    for d in objs:
        if d["kind"].startswith("Cluster"):
            kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], "--wait=false", check=False)


def test_planner_in_another_namespace_works_under_the_chart_rbac(cluster, kubectl, namespace, dgd_namespace,
                                                                 planner_rbac, tmp_path):
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from devcluster.controlplane import write_kubeconfig
    from scaler.control.audit import Audit
    from scaler.control.state import Override, SLATargets
    from scaler.control.store import ConfigMapStore
    from scaler.service.config import DeploymentRef, ServiceConfig

    ns, sa_name = dgd_namespace, planner_rbac["sa_name"]
    token = kubectl("create", "token", sa_name, "-n", namespace, "--duration=10m").strip()
    api = config.new_client_from_config(
        config_file=str(write_kubeconfig(cluster, tmp_path / "planner.kubeconfig", token=token)))
    # the state ConfigMap the chart configures, where the planner keeps it: the DGD's namespace
    cfg = ServiceConfig(deployment=DeploymentRef(name="llama", namespace=ns, prefill_service="prefill",
                                                 decode_service="decode"), state_configmap=f"{sa_name}-state")
    store = ConfigMapStore(api, cfg.deployment.namespace, cfg.configmap)
    state = store.load(SLATargets(ttft_ms=500, itl_ms=50))
    state.overrides["decode"] = Override(replicas=3, reason="test")
    store.save(state)  # create
    store.save(state)  # update
    assert store.load(SLATargets(ttft_ms=500, itl_ms=50)).overrides["decode"].replicas == 3
    Audit(api, ns, {"kind": "ConfigMap", "name": cfg.configmap}).record("tester", "OverrideSet", "decode pinned")
    assert any(e["reason"] == "PlannerOverrideSet" for e in kubectl.json("get", "events", "-n", ns)["items"])

    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                   "metadata": {"name": "llama"}, "spec": {"services": {"decode": {"replicas": 1}}}}, ns)
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                   "metadata": {"name": "llama-decode"},
                   "spec": {"replicas": 1, "dgdRef": {"name": "llama", "serviceName": "decode"}}}, ns)
    client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        "nvidia.com", "v1alpha1", ns, "dynamographdeploymentscalingadapters", "llama-decode", {"spec": {"replicas": 4}})
    assert kubectl.json("get", "dgdsa", "llama-decode", "-n", ns)["spec"]["replicas"] == 4

    # still only its own ConfigMap, and nothing in the release namespace it does not use
    kubectl("create", "configmap", "someone-elses", "-n", ns, "--from-literal=k=v")
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).read_namespaced_config_map("someone-elses", ns)
    assert exc.value.status == 403
    assert not can(kubectl, planner_rbac["sa"], "create", "configmaps", namespace)


def _aggregated_into(kubectl, builtin: str, role: str) -> bool:
    """Whether the built-in ClusterRole `builtin`'s aggregationRule (as the API server has it)
    selects ClusterRole `role` (the dev cluster runs no aggregation controller, so the rule is
    evaluated here as that controller does: matchLabels of any selector)."""
    selectors = kubectl.json("get", "clusterrole", builtin)["aggregationRule"]["clusterRoleSelectors"]
    labels = kubectl.json("get", "clusterrole", role)["metadata"].get("labels", {})
    assert all(not sel.get("matchExpressions") for sel in selectors), selectors
    return any(all(labels.get(k) == v for k, v in sel["matchLabels"].items()) for sel in selectors)


def test_write_role_is_not_in_edit_and_limits_are_a_role_of_their_own(kubectl, namespace, dgd_namespace,
                                                                        planner_rbac):
    ns, name = dgd_namespace, f"{planner_rbac['release']}-dynamo-scaling-planner"
    assert _aggregated_into(kubectl, "view", f"{name}-view")  # the rule is read right: view takes get
    for builtin in ("edit", "admin"):
        assert not _aggregated_into(kubectl, builtin, f"{name}-edit"), f"write role aggregated into {builtin}"
        assert not _aggregated_into(kubectl, builtin, f"{name}-override-limits")
    for sa, role in (("operator", f"{name}-edit"), ("limits", f"{name}-override-limits")):
        kubectl("create", "serviceaccount", sa, "-n", ns)
        kubectl("create", "rolebinding", sa, f"--clusterrole={role}", f"--serviceaccount={ns}:{sa}", "-n", ns)
    user = {sa: f"system:serviceaccount:{ns}:{sa}" for sa in ("operator", "limits")}
    assert may(kubectl, user["operator"], "update", ns)
    assert not may(kubectl, user["operator"], "override-limits", ns)
    assert may(kubectl, user["limits"], "override-limits", ns)
    assert not may(kubectl, user["limits"], "update", ns)
