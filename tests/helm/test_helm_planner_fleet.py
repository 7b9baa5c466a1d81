"""The chart's fleet mode (planner.mode=fleet): one planner Deployment for every
DynamoScalingPolicy in the listed namespaces, with replicas, leader election and a
PodDisruptionBudget; a config file the planner accepts; RBAC as a Role in each planned namespace
(checked against the real API server) and nothing of it anywhere else; and deployment mode, the
default, rendered as before."""

from __future__ import annotations

import json

import pytest
import yaml

from helm_chart_helpers import REPO, ensure_keda_crd, find, one

NAME = "ds-dynamo-scaling-planner"
FLEET = {"planner.enabled": "true", "planner.mode": "fleet"}


def _container(docs, name=NAME) -> dict:
    return one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def _config(docs, name=NAME) -> dict:
    return yaml.safe_load(one(docs, "ConfigMap", f"{name}-config")["data"]["config.yaml"])


def _planner_settings(args: list[str]):
    """The container's arguments through the real `dynamo-scaling` parser and the planner's
    settings (as the pod starts it)."""
    from dynamo_scaling.cli import build_parser
    from scaler.service.cli import settings_from_args

    parsed = build_parser().parse_args(args)
    assert parsed.command == "planner"
    return settings_from_args(parsed)


def test_fleet_mode_renders_one_ha_planner_for_the_listed_namespaces(render):
    docs = render.docs(sets={**FLEET, "planner.fleet.namespaces": "{team-a,team-b}",
                             "planner.fleet.gpuBudget": "32", "planner.fleet.resyncSeconds": "20"})
    dep = one(docs, "Deployment", NAME)
    assert dep["spec"]["replicas"] == 2
    # only the Lease holder writes, so a rolling update may overlap old and new pods
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    c = _container(docs)
    assert "--leader-election" in c["args"]
    assert "--leader-election-namespace=dynamo-scaling" in c["args"]
    assert f"--leader-election-lease={NAME}" in c["args"]
    term = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    pdb = one(docs, "PodDisruptionBudget", NAME)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]

    cfg = _config(docs)
    assert cfg["fleet"] == {"namespaces": ["team-a", "team-b"], "gpu_budget": 32, "resync_s": 20}
    assert "deployment" not in cfg and "state_configmap" not in cfg
    settings = _planner_settings(c["args"])
    assert settings.leader_election and settings.leader_election_namespace == "dynamo-scaling"
    assert settings.leader_election_lease == NAME


def test_fleet_mode_defaults(render):
    """Namespaces default to the release's, no shared budget unless given; with one replica no
    PodDisruptionBudget (it would block every drain), but still leader election."""
    docs = render.docs(namespace="ml-serving", sets={**FLEET, "planner.replicas": "1"})
    cfg = _config(docs)
    assert cfg["fleet"] == {"namespaces": ["ml-serving"], "resync_s": 30}
    assert one(docs, "Deployment", NAME)["spec"]["replicas"] == 1
    assert not find(docs, "PodDisruptionBudget", NAME)
    assert _planner_settings(_container(docs)["args"]).leader_election


def test_fleet_rbac_is_a_role_per_planned_namespace_and_nothing_cluster_wide(render):
    docs = render.docs(sets={**FLEET, "planner.fleet.namespaces": "{team-a,team-b}"})
    sa = {"kind": "ServiceAccount", "name": NAME, "namespace": "dynamo-scaling"}
    bindings = [b for b in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding") if sa in b["subjects"]]
    by_ns = {}
    for b in bindings:
        if b["kind"] == "ClusterRoleBinding":
            # cluster-wide only what the REST API's TokenReview and SubjectAccessReview need
            assert b["roleRef"]["name"] == "system:auth-delegator", b["metadata"]["name"]
            continue
        assert b["roleRef"]["kind"] == "Role", f"{b['metadata']['name']} binds a ClusterRole"
        by_ns.setdefault(b["metadata"]["namespace"], []).append(b["roleRef"]["name"])
    assert by_ns == {"team-a": [f"{NAME}-fleet"], "team-b": [f"{NAME}-fleet"],
                     "dynamo-scaling": [f"{NAME}-leader-election"]}
    # the deployment-mode ClusterRole and state ConfigMap Role are not rendered
    assert not find(docs, "ClusterRole", NAME) and not find(docs, "Role", f"{NAME}-state")
    lease = one(docs, "Role", f"{NAME}-leader-election")
    assert {"resourceNames": [NAME], "verbs": ["get", "update"]}.items() <= lease["rules"][1].items()


def test_deployment_mode_stays_the_default_and_as_before(render):
    docs = render.docs(sets={"planner.enabled": "true", "planner.deployment.name": "llama"})
    dep = one(docs, "Deployment", NAME)
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert not any(a.startswith("--leader-election") for a in _container(docs)["args"])
    assert not find(docs, "PodDisruptionBudget", NAME) and not find(docs, "Role", f"{NAME}-leader-election")
    assert _config(docs)["deployment"]["name"] == "llama" and "fleet" not in _config(docs)
    one(docs, "ClusterRole", NAME)
    # two planners of one DGD: leader election and a PodDisruptionBudget
    docs = render.docs(sets={"planner.enabled": "true", "planner.deployment.name": "llama", "planner.replicas": "2"})
    assert "--leader-election" in _container(docs)["args"]
    assert one(docs, "Deployment", NAME)["spec"]["strategy"]["type"] == "RollingUpdate"
    one(docs, "PodDisruptionBudget", NAME)
    one(docs, "Role", f"{NAME}-leader-election")


@pytest.mark.parametrize("sets,message", [
    ({**FLEET, "planner.leaderElection.enabled": "false"},
     "planner.replicas > 1 needs planner.leaderElection.enabled=true"),
    ({"planner.enabled": "true", "planner.deployment.name": "llama", "planner.replicas": "3",
      "planner.leaderElection.enabled": "false"}, "planner.replicas > 1 needs planner.leaderElection.enabled=true"),
    ({**FLEET, "planner.deployment.name": "llama"}, "planner.deployment.name is for planner.mode=deployment"),
    ({"planner.enabled": "true"}, "needs planner.deployment.name"),
], ids=["fleet-without-election", "replicas-without-election", "fleet-with-a-deployment", "no-target"])
def test_contradictory_planner_values_are_refused_naming_the_key(render, sets, message):
    proc = render.run(sets=sets, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("sets,where,message", [
    ({"planner.mode": "fleets"}, "/planner/mode", "value must be one of"),
    ({"planner.fleet.namespaces": "{Team_A}"}, "/planner/fleet/namespaces/0", "does not match pattern"),
    ({"planner.fleet.gpuBudget": "0"}, "/planner/fleet/gpuBudget", "minimum"),
    ({"planner.fleet.resyncSeconds": "0"}, "/planner/fleet/resyncSeconds", "minimum"),
    ({"planner.fleet.namespace": "team-a"}, "/planner/fleet", "additional properties 'namespace' not allowed"),
    ({"planner.replicas": "-1"}, "/planner/replicas", "minimum"),
], ids=["mode", "namespace-name", "budget", "resync", "misspelt", "replicas"])
def test_schema_rejects_bad_fleet_values_naming_the_key(render, sets, where, message):
    proc = render.run(sets={**FLEET, **sets}, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert f"at '{where}'" in proc.stderr and message in proc.stderr, proc.stderr


# ---- against the real API server

POLICIES = "dynamoscalingpolicies.scaling.dynamo-scaling.io"
DGDSA = "dynamographdeploymentscalingadapters.nvidia.com"


@pytest.fixture()
def fleet_rbac(render, kubectl, namespace, dgd_namespace):
    """The chart's fleet-mode RBAC for a release in `namespace` planning `namespace` and `dgd_namespace`."""
    from test_helm_rbac import RBAC_KINDS as kinds

    ensure_keda_crd(kubectl)  # so that `auth can-i` resolves scaledobjects.keda.sh
    docs = render.docs(release=namespace, namespace=namespace, sets={
        **FLEET, "planner.fleet.namespaces": f"{{{namespace},{dgd_namespace}}}"})
    objs = [d for d in docs if d["kind"] in kinds]
    kubectl.apply(objs)
    sa_name = f"{namespace}-dynamo-scaling-planner"
    yield {"release": namespace, "sa_name": sa_name, "sa": f"system:serviceaccount:{namespace}:{sa_name}",
           "watched": [namespace, dgd_namespace], "docs": docs}
    for d in objs:
        if d["kind"].startswith("Cluster"):
            kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], "--wait=false", check=False)


@pytest.mark.cluster
def test_fleet_planner_may_plan_in_watched_namespaces_only(kubectl, namespace, fleet_rbac):
    from test_helm_rbac import can

    sa, lease = fleet_rbac["sa"], fleet_rbac["sa_name"]
    allowed = [("get", POLICIES), ("list", POLICIES), ("watch", POLICIES), ("create", POLICIES), ("patch", POLICIES),
               ("patch", POLICIES, "--subresource=status"),
               ("get", "dynamographdeployments.nvidia.com"), ("list", "dynamographdeployments.nvidia.com"),
               ("get", DGDSA), ("list", DGDSA),
               ("get", DGDSA, "--subresource=scale"), ("patch", DGDSA, "--subresource=scale"),
               ("update", DGDSA, "--subresource=scale"),
               ("list", "horizontalpodautoscalers.autoscaling"), ("list", "scaledobjects.keda.sh"),
               ("list", "pods"), ("create", "events"), ("patch", "events")]
    refused = [("delete", POLICIES), ("update", POLICIES), ("update", POLICIES, "--subresource=status"),
               ("patch", "dynamographdeployments.nvidia.com"), ("update", "dynamographdeployments.nvidia.com"),
               ("patch", DGDSA), ("create", DGDSA), ("delete", DGDSA),
               ("get", "secrets"), ("list", "configmaps"), ("create", "configmaps"), ("delete", "pods"),
               ("create", "leases.coordination.k8s.io")]
    wrong = []
    for where in fleet_rbac["watched"]:
        wrong += [f"missing {c} in {where}" for c in allowed if not can(kubectl, sa, c[0], c[1], where, *c[2:])]
        wrong += [f"granted {c} in {where}" for c in refused
                  if (c[1] != "leases.coordination.k8s.io" or where != namespace)
                  and can(kubectl, sa, c[0], c[1], where, *c[2:])]
    # a namespace not in planner.fleet.namespaces: nothing at all
    wrong += [f"granted {c} in other-ns" for c in allowed if can(kubectl, sa, c[0], c[1], "other-ns", *c[2:])]
    # the Lease: in the release namespace, only its own name
    for want, verb, res, where in [(True, "create", "leases.coordination.k8s.io", namespace),
                                   (True, "get", f"leases.coordination.k8s.io/{lease}", namespace),
                                   (True, "update", f"leases.coordination.k8s.io/{lease}", namespace),
                                   (False, "update", "leases.coordination.k8s.io/some-other-lease", namespace),
                                   (False, "delete", f"leases.coordination.k8s.io/{lease}", namespace),
                                   (False, "create", "leases.coordination.k8s.io", "other-ns"),
                                   (True, "create", "tokenreviews.authentication.k8s.io", None),
                                   (True, "create", "subjectaccessreviews.authorization.k8s.io", None),
                                   (False, "list", POLICIES, None),
                                   (False, "list", "pods", None)]:
        if can(kubectl, sa, verb, res, where) != want:
            wrong.append(f"{'missing' if want else 'granted'} {verb} {res} in {where}")
    # DynamoGraphDeploymentRequests (the SLA source) are Dynamo's: no CRD here, so ask the
    # authorizer directly rather than through kubectl, which resolves the resource first
    for want, where in ((True, namespace), (True, fleet_rbac["watched"][1]), (False, "other-ns")):
        if _sar(kubectl, sa, "get", "nvidia.com", "dynamographdeploymentrequests", where) != want:
            wrong.append(f"{'missing' if want else 'granted'} get dynamographdeploymentrequests in {where}")
    assert not wrong, "\n".join(wrong)


def _sar(kubectl, user: str, verb: str, group: str, resource: str, ns: str) -> bool:
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
        "resourceAttributes": {"group": group, "resource": resource, "verb": verb, "namespace": ns}}}
    out = kubectl.run("create", "-o", "json", "-f", "-", input=json.dumps(sar))
    return json.loads(out.stdout)["status"].get("allowed", False) is True


@pytest.mark.cluster
def test_fleet_planner_code_runs_under_the_chart_rbac(cluster, kubectl, namespace, dgd_namespace, fleet_rbac,
                                                      tmp_path):
    """The planner's own code with a token of the chart's ServiceAccount: the Lease, a policy
    (create, REST change, status) and a /scale write in a watched namespace; refused in another."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from adapter.leader import LeaseElector
    from adapter.scale_client import ScaleClient
    from devcluster.controlplane import write_kubeconfig
    from scaler.control.policy import GROUP, PLURAL, VERSION, PolicyStore
    from scaler.control.state import ControlState, Override, SLATargets

    sa_name = fleet_rbac["sa_name"]
    token = kubectl("create", "token", sa_name, "-n", namespace, "--duration=10m").strip()
    api = config.new_client_from_config(
        config_file=str(write_kubeconfig(cluster, tmp_path / "planner.kubeconfig", token=token)))

    elector = LeaseElector(api, namespace, sa_name, "planner-0", lease_s=15, renew_deadline_s=10, retry_s=2)
    assert elector.try_acquire() and elector.try_acquire()  # create, then renew (update)
    assert kubectl.json("get", "lease", sa_name, "-n", namespace)["spec"]["holderIdentity"] == "planner-0"
    with pytest.raises(ApiException) as exc:
        LeaseElector(api, dgd_namespace, sa_name, "planner-0", lease_s=15, renew_deadline_s=10,
                     retry_s=2).try_acquire()
    assert exc.value.status == 403

    store = PolicyStore(api, dgd_namespace, "llama")
    state = store.load(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50)))  # creates the policy
    after = ControlState(sla=state.sla, overrides={"decode": Override(replicas=3)})
    assert store.save_change(state, after).overrides["decode"].replicas == 3
    assert store.write_status({"plan": {"decode": 3}}, [("Planning", True, "Active", "planning")])
    assert kubectl.json("-n", dgd_namespace, "get", "dsp", "llama")["status"]["plan"] == {"decode": 3}
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, dgd_namespace, PLURAL)
    assert [p["metadata"]["name"] for p in listed["items"]] == ["llama"]

    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                   "metadata": {"name": "llama"}, "spec": {"services": {"decode": {"replicas": 1}}}}, dgd_namespace)
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                   "metadata": {"name": "llama-decode"},
                   "spec": {"replicas": 1, "dgdRef": {"name": "llama", "serviceName": "decode"}}}, dgd_namespace)
    scale = ScaleClient(api, dgd_namespace)
    scale.set("llama-decode", 4)
    assert scale.other_scalers("llama-decode") == []
    assert kubectl.json("get", "dgdsa", "llama-decode", "-n", dgd_namespace)["spec"]["replicas"] == 4
    client.CoreV1Api(api).list_namespaced_pod(dgd_namespace)

    # a namespace the release does not plan: refused, whatever is there
    kubectl("create", "namespace", f"{dgd_namespace}-x")
    try:
        with pytest.raises(ApiException) as exc:
            PolicyStore(api, f"{dgd_namespace}-x", "llama").load(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50)))
        assert exc.value.status == 403
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_namespaced_pod(f"{dgd_namespace}-x")
        assert exc.value.status == 403
    finally:
        kubectl.run("delete", "namespace", f"{dgd_namespace}-x", "--wait=false", check=False)


@pytest.mark.parametrize("values,sets", [
    ([], {**FLEET, "planner.fleet.namespaces": "{team-a,team-b}", "planner.fleet.gpuBudget": "32"}),
    ([], {**FLEET}),
    ([REPO / "examples" / "helm" / "values-standalone.yaml", REPO / "examples" / "planner" / "fleet" / "values-fleet.yaml"],
     {}),
], ids=["budget", "defaults", "example"])
def test_the_planner_accepts_the_rendered_fleet_config(render, tmp_path, values, sets):
    """The config file the chart renders, at the path the pod mounts it, loaded by the planner's
    own loader (what `dynamo-scaling planner --config` does before it starts)."""
    from scaler.service import config as cfgmod

    docs = render.docs(values=values, sets=sets)
    settings = _planner_settings(_container(docs)["args"])
    path = tmp_path / settings.config.name
    path.write_text(one(docs, "ConfigMap", f"{NAME}-config")["data"]["config.yaml"])
    loaded = cfgmod.load(path)
    rendered = _config(docs)["fleet"]
    assert loaded.deployment is None and loaded.fleet.namespaces == rendered["namespaces"]
    assert loaded.fleet.gpu_budget == rendered.get("gpu_budget") and loaded.fleet.resync_s == rendered["resync_s"]
    assert loaded.planner.ttft_ms == _config(docs)["planner"]["ttft_ms"]


@pytest.mark.cluster
def test_switch_to_fleet_mode_and_roll_back_with_helm(private_helm, private_kubectl):
    """The migration's chart side for real (docs/fleet.md): a deployment-mode release is upgraded
    to fleet mode (its per-DGD RBAC goes, a Role appears in each planned namespace, two replicas
    with a PodDisruptionBudget) and `helm rollback` restores deployment mode exactly."""
    from helm_chart_helpers import CHART

    k, chart = private_kubectl, str(CHART)
    for ns in ("dynamo-scaling", "team-a", "team-b"):
        k("create", "namespace", ns)
    base = ["-n", "dynamo-scaling", "--set", "planner.enabled=true", "--timeout", "60s"]
    private_helm("install", "ds", chart, *base, "--set", "planner.deployment.name=chat",
                 "--set", "planner.deployment.namespace=team-a")

    def planner_objects() -> dict:
        dep = k.json("get", "deployment", NAME, "-n", "dynamo-scaling")
        return {"replicas": dep["spec"]["replicas"],
                "leader": "--leader-election" in dep["spec"]["template"]["spec"]["containers"][0]["args"],
                "pdb": k.run("get", "pdb", NAME, "-n", "dynamo-scaling", check=False).returncode == 0,
                "clusterrole": k.run("get", "clusterrole", NAME, check=False).returncode == 0,
                "roles": sorted(ns for ns in ("team-a", "team-b", "dynamo-scaling")
                                if k.run("get", "role", f"{NAME}-fleet", "-n", ns, check=False).returncode == 0)}

    before = planner_objects()
    assert before == {"replicas": 1, "leader": False, "pdb": False, "clusterrole": True, "roles": []}

    private_helm("upgrade", "ds", chart, *base, "--set", "planner.mode=fleet",
                 "--set", "planner.fleet.namespaces={team-a,team-b}", "--set", "planner.fleet.gpuBudget=24")
    assert planner_objects() == {"replicas": 2, "leader": True, "pdb": True, "clusterrole": False,
                                 "roles": ["team-a", "team-b"]}
    cfg = yaml.safe_load(k.json("get", "configmap", f"{NAME}-config", "-n", "dynamo-scaling")["data"]["config.yaml"])
    assert cfg["fleet"] == {"namespaces": ["team-a", "team-b"], "gpu_budget": 24, "resync_s": 30}

    private_helm("rollback", "ds", "1", "-n", "dynamo-scaling", "--wait=false", "--timeout", "60s")
    assert planner_objects() == before
    assert k.run("get", "role", f"{NAME}-leader-election", "-n", "dynamo-scaling", check=False).returncode != 0


@pytest.mark.cluster
def test_the_rendered_fleet_planner_plans_two_namespaces_under_the_chart_rbac(cluster, kubectl, namespace,
                                                                              dgd_namespace, fleet_rbac,
                                                                              prometheus, tmp_path):
    """The real planner process, started with the container arguments and config file the chart
    renders and a token of the chart's ServiceAccount: it takes the chart's Lease, lists the
    policies of both planned namespaces, writes /scale and the policy status in each, and reports
    no refused call."""
    import httpx
    from exporter_process import Exporter
    from helpers import wait_for

    from devcluster import launch
    from devcluster.controlplane import write_kubeconfig
    from devcluster.procs import free_port

    docs = fleet_rbac["docs"]
    sa_name = fleet_rbac["sa_name"]
    token = kubectl("create", "token", sa_name, "-n", namespace, "--duration=20m").strip()
    kubeconfig = write_kubeconfig(cluster, tmp_path / "planner.kubeconfig", token=token)
    standin = launch.standin(cluster.kubeconfig, None, tmp_path / "standin.log", startup_delay_s=1).start()
    exporters = []
    try:
        # one DGD per planned namespace, each with a policy that pins a different pool at 2
        for ns, pinned in ((namespace, "decode"), (dgd_namespace, "prefill")):
            kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                           "metadata": {"name": "llama"}, "spec": {"services": {
                               "Frontend": {"componentType": "frontend", "replicas": 1},
                               **{svc: {"componentType": "worker", "subComponentType": svc, "replicas": 1,
                                        "scalingAdapter": {"enabled": True}} for svc in ("prefill", "decode")}}}}, ns)
            kubectl.apply([{"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                            "metadata": {"name": f"llama-{svc}"},
                            "spec": {"replicas": 1, "dgdRef": {"name": "llama", "serviceName": svc}}}
                           for svc in ("prefill", "decode")], ns)
            kubectl.apply({"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
                           "metadata": {"name": "llama"},
                           "spec": {"dgdRef": {"name": "llama"}, "sla": {"ttftMs": 500, "itlMs": 50},
                                    "pins": [{"pool": pinned, "replicas": 2, "reason": "chart test"}]}}, ns)
            front = Exporter(tmp_path / ns / "frontend", [
                {"name": "dynamo_frontend_requests", "type": "counter", "value": 7, "labels": {"model": "m"}},
                {"name": "dynamo_frontend_inflight_requests", "value": 0, "labels": {"model": "m"}}])
            workers = Exporter(tmp_path / ns / "workers", [
                {"name": n, "value": 0, "labels": {"service": svc, "model_name": "m"}}
                for svc in ("prefill", "decode") for n in ("vllm:num_requests_running", "vllm:num_requests_waiting")])
            exporters += [(ns, front, workers)]
        prometheus.set_targets("frontend", [(f.address, {"namespace": ns, "dgd": "llama", "service": "Frontend"})
                                            for ns, f, _ in exporters])
        prometheus.set_targets("workers", [(w.address, {"namespace": ns, "dgd": "llama"}) for ns, _, w in exporters])
        prometheus.wait_for_targets("frontend", 2)
        prometheus.wait_for_targets("workers", 2)

        cm = one(docs, "ConfigMap", f"{sa_name}-config")
        cfg = yaml.safe_load(cm["data"]["config.yaml"])
        # the pod gets the signal mapping from the chart's signals ConfigMap; these series carry dgd labels
        cfg["signals"] = {"preset": "dgd-labels"}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
        port = free_port()
        args = []
        for a in _container(docs, sa_name)["args"]:
            if a.startswith(("--config=", "--prometheus-url=", "--api-port=", "--bind-address=", "--tls-")):
                continue  # the pod's paths and addresses; replaced below
            args.append(a)
        assert "--leader-election" in args
        args += [f"--config={tmp_path / 'config.yaml'}", f"--prometheus-url={prometheus.url}", f"--api-port={port}",
                 "--bind-address=127.0.0.1", "--insecure-http", f"--kubeconfig={kubeconfig}"]
        planner = launch.Process("planner", launch.cli(*args), tmp_path / "planner.log",
                                 ready=lambda: launch.http_ok(f"http://127.0.0.1:{port}/healthz"))
        planner.start()
        try:
            def replicas(ns: str, svc: str) -> int:
                return kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]

            def planning(ns: str) -> bool:
                conds = kubectl.json("-n", ns, "get", "dsp", "llama").get("status", {}).get("conditions", [])
                return any(c["type"] == "Planning" and c["status"] == "True" for c in conds)

            try:
                wait_for(lambda: replicas(namespace, "decode") == 2 and replicas(dgd_namespace, "prefill") == 2
                         and planning(namespace) and planning(dgd_namespace), timeout=120,
                         what="both pins written and both policies planned")
            except pytest.fail.Exception as exc:  # say why: the policies' status and the planner's own log
                status = {ns: kubectl.json("-n", ns, "get", "dsp", "llama").get("status")
                          for ns in (namespace, dgd_namespace)}
                pytest.fail(f"{exc}\npolicy status: {status}\nplanner log:\n{planner.log_text()[-4000:]}")
            lease = kubectl.json("get", "lease", sa_name, "-n", namespace)["spec"]
            assert lease["holderIdentity"], lease
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text
            log = planner.log_text()
            # a refused call shows as the client's "(403)" and "Forbidden" (bare digits would match a port)
            assert "(403)" not in log and "Forbidden" not in log, log[-3000:]
        finally:
            planner.stop()
    finally:
        standin.stop(timeout=10)
        for _, f, w in exporters:
            f.stop()
            w.stop()
