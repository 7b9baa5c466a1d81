"""The chart's planner RBAC and the DynamoScalingPolicy: under its own ServiceAccount the
planner creates the policy of its DGD, writes REST changes to its spec and its decisions to its
status, in the DGD's namespace; it may not delete policies."""

from __future__ import annotations


import pytest
from helm_chart_helpers import ensure_keda_crd
from test_helm_rbac import RBAC_KINDS, can

pytestmark = pytest.mark.cluster


def test_planner_writes_its_policy_under_the_chart_rbac(cluster, render, kubectl, namespace, dgd_namespace,
                                                        tmp_path):
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from devcluster.controlplane import write_kubeconfig
    from scaler.control.policy import GROUP, PLURAL, VERSION, PolicyStore
    from scaler.control.state import ControlState, Override, SLATargets

    ensure_keda_crd(kubectl)
    docs = render.docs(release=namespace, namespace=namespace, sets={
        "planner.enabled": "true", "planner.deployment.name": "llama", "planner.deployment.namespace": dgd_namespace})
    objs = [d for d in docs if d["kind"] in RBAC_KINDS]
    kubectl.apply(objs)
    try:
        sa_name = f"{namespace}-dynamo-scaling-planner"
        sa = f"system:serviceaccount:{namespace}:{sa_name}"
        token = kubectl("create", "token", sa_name, "-n", namespace, "--duration=10m").strip()
        api = config.new_client_from_config(
            config_file=str(write_kubeconfig(cluster, tmp_path / "planner.kubeconfig", token=token)))

        store = PolicyStore(api, dgd_namespace, "llama")
        state = store.load(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50)))  # creates the policy
        after = ControlState(sla=state.sla, overrides={"decode": Override(replicas=3)})
        assert store.save_change(state, after).overrides["decode"].replicas == 3
        assert store.write_status({"plan": {"decode": 3}}, [("Planning", True, "Active", "planning")])
        dsp = kubectl.json("-n", dgd_namespace, "get", "dsp", "llama")
        assert dsp["spec"]["pins"] == [{"pool": "decode", "replicas": 3}] and dsp["status"]["plan"] == {"decode": 3}

        with pytest.raises(ApiException) as exc:
            client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, dgd_namespace, PLURAL, "llama")
        assert exc.value.status == 403
        assert not can(kubectl, sa, "patch", "dynamoscalingpolicies.scaling.dynamo-scaling.io", "other-ns")
        assert not can(kubectl, sa, "update", "dynamoscalingpolicies.scaling.dynamo-scaling.io", dgd_namespace)
    finally:
        for d in objs:
            if d["kind"].startswith("Cluster"):
                kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], "--wait=false", check=False)
