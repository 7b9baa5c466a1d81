"""Least privilege, checked against the real API server: the chart's RBAC is applied, then each
component's ServiceAccount is asked (`kubectl auth can-i --as`) for what it needs and for what it
must not have; the planner's own code then runs with a token of its ServiceAccount."""

from __future__ import annotations

import json
import re

import pytest
from helm_chart_helpers import ensure_keda_crd

pytestmark = pytest.mark.cluster

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


@pytest.fixture()
def chart_rbac(render, kubectl, namespace):
    """The chart's ServiceAccounts and RBAC for a release named after the test namespace."""
    ensure_keda_crd(kubectl)  # so that `auth can-i` can resolve scaledobjects.keda.sh
    release = namespace
    docs = render.docs(release=release, namespace=namespace, sets={
        "planner.enabled": "true", "planner.deployment.name": "llama"})
    objs = [d for d in docs if d["kind"] in RBAC_KINDS]
    kubectl.apply(objs)
    yield {"release": release, "ns": namespace, "docs": docs,
           "sa": {c: f"system:serviceaccount:{namespace}:{release}-dynamo-scaling-{c}"
                  for c in ("adapter", "metrics-server", "planner")}}
    for d in objs:
        if d["kind"].startswith("Cluster") or d["metadata"].get("namespace") == "kube-system":
            ns = ["-n", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
            kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], *ns, "--wait=false", check=False)


def _served_subresources(kubectl, resource: str) -> set[str]:
    """Subresources the API server serves for `plural.group` (discovery), e.g. {"scale", "status"}."""
    plural, _, group = resource.partition(".")
    def raw(path: str) -> dict:
        return json.loads(kubectl("get", "--raw", path))

    paths = [f"/apis/{v['groupVersion']}" for v in raw(f"/apis/{group}")["versions"]] if group else ["/api/v1"]
    return {r["name"].split("/", 1)[1] for p in paths for r in raw(p)["resources"]
            if r["name"].startswith(f"{plural}/")}


def can(kubectl, user: str, verb: str, resource: str, ns: str | None, *extra: str) -> bool:
    for flag in extra:
        # the authorizer answers "no" for a subresource that does not exist, without a warning
        if flag.startswith("--subresource="):
            sub = flag.split("=", 1)[1]
            assert sub in _served_subresources(kubectl, resource), f"{resource} has no subresource {sub!r}"
    args = ["auth", "can-i", verb, resource, f"--as={user}", *extra]
    args += ["-n", ns] if ns else []
    proc = kubectl.run(*args, check=False)
    answer, stderr = proc.stdout.strip(), proc.stderr.strip()
    if ns is None and re.fullmatch(r"Warning: resource '[\w.-]+' is not namespace scoped in group '[\w.-]+'", stderr):
        stderr = ""  # a cluster-scoped resource asked without a namespace: the answer stands
    # "no" must mean denied: a misspelt resource or subresource also prints "no", with a warning
    if answer not in ("yes", "no") or stderr:
        raise AssertionError(f"kubectl {' '.join(args)}: unexpected answer {answer!r}, stderr: {proc.stderr.strip()}")
    return answer == "yes"


def test_each_component_gets_what_it_needs_and_nothing_more(kubectl, chart_rbac):
    ns, sa, release = chart_rbac["ns"], chart_rbac["sa"], chart_rbac["release"]
    lease = f"{release}-dynamo-scaling-adapter"
    state_cm = f"{release}-dynamo-scaling-planner-state"
    expect = {
        "adapter": {
            True: [("patch", "dynamographdeployments.nvidia.com", "other-ns"),
                   ("watch", "dynamographdeployments.nvidia.com", "other-ns"),
                   ("create", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns"),
                   ("delete", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns"),
                   ("patch", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns", "--subresource=status"),
                   ("get", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns", "--subresource=scale"),
                   ("list", "horizontalpodautoscalers.autoscaling", "other-ns"),
                   ("list", "scaledobjects.keda.sh", "other-ns"),
                   ("create", "events", "other-ns"),
                   ("create", "leases.coordination.k8s.io", ns),
                   ("update", f"leases.coordination.k8s.io/{lease}", ns),
                   ("list", "customresourcedefinitions.apiextensions.k8s.io", None)],
            False: [("update", "dynamographdeployments.nvidia.com", "other-ns"),
                    ("update", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns", "--subresource=scale"),
                    ("delete", "dynamographdeployments.nvidia.com", "other-ns"),
                    ("get", "secrets", ns), ("list", "secrets", "other-ns"),
                    ("delete", "pods", "other-ns"), ("create", "deployments.apps", ns),
                    ("update", "horizontalpodautoscalers.autoscaling", "other-ns"),
                    ("update", "leases.coordination.k8s.io/some-other-lease", ns),
                    ("create", "leases.coordination.k8s.io", "other-ns"),
                    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None),
                    ("create", "tokenreviews.authentication.k8s.io", None)],
        },
        "metrics-server": {
            True: [("create", "tokenreviews.authentication.k8s.io", None),
                   ("create", "subjectaccessreviews.authorization.k8s.io", None),
                   ("get", "configmaps/extension-apiserver-authentication", "kube-system")],
            False: [("update", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns", "--subresource=scale"),
                    ("patch", "dynamographdeployments.nvidia.com", "other-ns"),
                    ("list", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns"),
                    ("watch", "dynamographdeployments.nvidia.com", "other-ns"),
                    ("get", "secrets", "kube-system"), ("get", "secrets", ns),
                    ("get", "configmaps/other", "kube-system"), ("list", "pods", "other-ns")],
        },
        "planner": {
            True: [("update", "dynamographdeploymentscalingadapters.nvidia.com", ns, "--subresource=scale"),
                   ("get", "dynamographdeploymentscalingadapters.nvidia.com", ns, "--subresource=scale"),
                   ("patch", "dynamographdeploymentscalingadapters.nvidia.com", ns),
                   ("get", "dynamographdeployments.nvidia.com", ns),
                   ("list", "pods", ns),
                   ("list", "horizontalpodautoscalers.autoscaling", ns),
                   ("create", "events", ns),
                   ("create", "configmaps", ns),
                   ("update", f"configmaps/{state_cm}", ns),
                   ("create", "tokenreviews.authentication.k8s.io", None),
                   ("create", "subjectaccessreviews.authorization.k8s.io", None)],
            False: [("patch", "dynamographdeployments.nvidia.com", ns),  # replicas only through /scale
                    ("update", "dynamographdeployments.nvidia.com", ns),
                    ("delete", "dynamographdeploymentscalingadapters.nvidia.com", ns),
                    ("create", "dynamographdeploymentscalingadapters.nvidia.com", ns),
                    ("update", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns", "--subresource=scale"),
                    ("update", "configmaps/someone-elses", ns),
                    ("get", "secrets", ns), ("delete", "pods", ns)],
        },
    }
    wrong = []
    for comp, cases in expect.items():
        for want, checks in cases.items():
            for verb, res, where, *extra in checks:
                if can(kubectl, sa[comp], verb, res, where, *extra) != want:
                    wrong.append(f"{comp}: {'missing' if want else 'granted'} {verb} {res} {' '.join(extra)} in {where}")
    assert not wrong, "\n".join(wrong)
    # the HPA controller (per-controller credentials) may read external metrics
    # (a SubjectAccessReview: kubectl cannot resolve the group while no APIService serves it)
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
        "resourceAttributes": {"group": "external.metrics.k8s.io", "resource": "dynamo_queue_depth",
                               "verb": "get", "namespace": "default"}}}
    out = kubectl.run("create", "-o", "json", "-f", "-", input=json.dumps(sar))
    assert json.loads(out.stdout)["status"]["allowed"] is True


def test_planner_code_runs_under_its_service_account(cluster, kubectl, namespace, chart_rbac, tmp_path):
    """The planner's control-plane code (state ConfigMap, audit Events, TokenReview +
    SubjectAccessReview, writes through DGDSA /scale) under a token of the chart's ServiceAccount."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from devcluster.controlplane import write_kubeconfig
    from scaler.control.audit import Audit
    from scaler.control.auth import KubernetesAuthorizer, READ
    from scaler.control.state import Override, SLATargets
    from scaler.control.store import ConfigMapStore

    ns, release = chart_rbac["ns"], chart_rbac["release"]
    sa_name = f"{release}-dynamo-scaling-planner"
    token = kubectl("create", "token", sa_name, "-n", ns, "--duration=10m").strip()
    api = config.new_client_from_config(config_file=str(write_kubeconfig(cluster, tmp_path / "planner.kubeconfig", token=token)))

    store = ConfigMapStore(api, ns, f"{sa_name}-state")
    state = store.load(SLATargets(ttft_ms=500, itl_ms=50))
    state.overrides["decode"] = Override(replicas=3, reason="test")
    store.save(state)          # create
    store.save(state)          # update
    assert store.load(SLATargets(ttft_ms=500, itl_ms=50)).overrides["decode"].replicas == 3
    # other ConfigMaps in the namespace stay out of reach
    kubectl("create", "configmap", "someone-elses", "-n", ns, "--from-literal=k=v")
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(api).read_namespaced_config_map("someone-elses", ns)
    assert exc.value.status == 403

    Audit(api, ns, {"kind": "ConfigMap", "name": f"{sa_name}-state"},
          component="planner").record("tester", "OverrideSet", "decode pinned at 3")
    assert any(e["reason"] == "PlannerOverrideSet" for e in kubectl.json("get", "events", "-n", ns)["items"])

    # TokenReview + SubjectAccessReview with the planner's own credentials
    kubectl("create", "serviceaccount", "operator", "-n", ns)
    caller_token = kubectl("create", "token", "operator", "-n", ns, "--duration=10m").strip()
    auth = KubernetesAuthorizer(api, ns, sa_name)
    caller = auth.authenticate(caller_token)
    assert caller.username == f"system:serviceaccount:{ns}:operator"
    with pytest.raises(Exception) as denied:
        auth.authorize(caller, READ)
    assert getattr(denied.value, "status", None) == 403

    # scale through the DGDSA /scale subresource, never the DGD itself
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                   "metadata": {"name": "llama"}, "spec": {"services": {"decode": {"replicas": 1}}}}, ns)
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                   "metadata": {"name": "llama-decode"},
                   "spec": {"replicas": 1, "dgdRef": {"name": "llama", "serviceName": "decode"}}}, ns)
    co = client.CustomObjectsApi(api)
    co.patch_namespaced_custom_object_scale("nvidia.com", "v1alpha1", ns, "dynamographdeploymentscalingadapters",
                                            "llama-decode", {"spec": {"replicas": 4}})
    assert kubectl.json("get", "dgdsa", "llama-decode", "-n", ns)["spec"]["replicas"] == 4
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object("nvidia.com", "v1alpha1", ns, "dynamographdeployments", "llama",
                                          {"spec": {"services": {"decode": {"replicas": 9}}}})
    assert exc.value.status == 403
