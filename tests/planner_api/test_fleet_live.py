"""Fleet mode on the real control plane: one `dynamo-scaling planner` process plans three DGDs
(every DynamoScalingPolicy of the namespace) within one GPU budget, the lower priority gives way
(BudgetLimited on its policy), pins from kubectl and from REST meet in the same policies, callers
are authorized per DGD by the API server, and a policy that cannot be planned says why."""

from __future__ import annotations

import httpx
import pytest
from exporter_process import Exporter
from helpers import wait_for
from planner_process import PlannerProcess
from planner_support import frontend_series

pytestmark = pytest.mark.cluster

BUDGET = 10
PRIORITY = {"alpha": 10, "beta": 5, "gamma": 0}
# gamma names its pools itself (spec.roles); the others are found by subComponentType
POOLS = {"alpha": ("prefill", "decode"), "beta": ("prefill", "decode"), "gamma": ("pf", "dec")}


def _dgd(name: str) -> dict:
    """One replica per pool: the adapter controller makes the adapters from these and carries
    the planner's writes to the DGD, whose pods (the stand-in's) are what holds the budget's GPUs."""
    pf, dec = POOLS[name]
    sub = name != "gamma"
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": name},
            "spec": {"services": {
                "Frontend": {"componentType": "frontend", "replicas": 1},
                pf: {"componentType": "worker", **({"subComponentType": "prefill"} if sub else {}), "replicas": 1,
                     "scalingAdapter": {"enabled": True}},
                dec: {"componentType": "worker", **({"subComponentType": "decode"} if sub else {}), "replicas": 1,
                      "scalingAdapter": {"enabled": True}}}}}


def _policy(name: str, dgd: str | None = None, **spec) -> dict:
    roles = {"roles": {"prefill": "pf", "decode": "dec"}} if name == "gamma" else {}
    return {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
            "metadata": {"name": name},
            "spec": {"dgdRef": {"name": dgd or name}, "sla": {"ttftMs": 500, "itlMs": 50},
                     "priority": PRIORITY.get(name, 0), **roles, **spec}}


def _workers(name: str) -> list[dict]:
    """Idle prefill; decode workers reporting 90% KV usage, so each planner wants one decode
    replica more than it has (up to max_decode): a steady demand for the budget to cut."""
    pf, dec = POOLS[name]
    out = [{"name": n, "value": 0, "labels": {"service": svc, "model_name": "m"}}
           for svc in (pf, dec) for n in ("vllm:num_requests_running", "vllm:num_requests_waiting")]
    return out + [{"name": "vllm:kv_cache_usage_perc", "value": 0.9, "labels": {"service": dec, "model_name": "m"}}]


def _role(name: str, verbs: list[str], names: list[str] | None) -> list[dict]:
    rule = {"apiGroups": ["scaling.dynamo-scaling.io"], "resources": ["planners"], "verbs": verbs,
            **({"resourceNames": names} if names else {})}
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": [rule]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name}]}]


def test_one_planner_plans_three_dgds_within_one_budget(cluster, kubectl, namespace, standin, adapter, prometheus,
                                                        tmp_path):
    ns = namespace
    kubectl.apply([_dgd(n) for n in POOLS], ns)
    wait_for(lambda: kubectl.run("-n", ns, "get", "dgdsa", *(f"{n}-{svc}" for n, pools in POOLS.items()
                                                             for svc in pools), check=False).returncode == 0,
             what="the adapters made by the controller")
    kubectl.apply([_policy(n) for n in POOLS] + [_policy("delta", dgd="no-such-dgd")], ns)
    kubectl.apply(_role("operator", ["get", "update"], None) + _role("beta-viewer", ["get"], ["beta"]), ns)
    token = {sa: kubectl("-n", ns, "create", "token", sa, "--duration=10m").strip()
             for sa in ("operator", "beta-viewer")}
    auth = {sa: {"Authorization": f"Bearer {t}"} for sa, t in token.items()}
    exporters = {n: (Exporter(tmp_path / n / "frontend", frontend_series()), Exporter(tmp_path / n / "workers",
                                                                                     _workers(n))) for n in POOLS}
    prometheus.set_targets("frontend", [(f.address, {"namespace": ns, "dgd": n, "service": "Frontend"})
                                        for n, (f, _) in exporters.items()])
    prometheus.set_targets("workers", [(w.address, {"namespace": ns, "dgd": n}) for n, (_, w) in exporters.items()])
    prometheus.wait_for_targets("frontend", 3)
    prometheus.wait_for_targets("workers", 3)
    wait_for(lambda: all(kubectl.json("-n", ns, "get", "dgd", n).get("status", {}).get("state") == "successful"
                         for n in POOLS), what="DGDs ready")

    (tmp_path / "planner").mkdir()
    planner = PlannerProcess(cluster.kubeconfig, ns, prometheus.url, tmp_path / "planner", tls="off",
                             planner={"max_decode": 3},
                             config={"fleet": {"namespaces": [ns], "gpu_budget": BUDGET, "resync_s": 1}}).start()

    def get(path: str, who: str = "operator") -> httpx.Response:
        return httpx.get(planner.url + path, headers=auth[who], timeout=10)

    def replicas(dgd: str, svc: str) -> int:
        return kubectl.json("-n", ns, "get", "dgdsa", f"{dgd}-{svc}")["spec"]["replicas"]

    def condition(policy: str, ctype: str) -> dict:
        conds = kubectl.json("-n", ns, "get", "dsp", policy).get("status", {}).get("conditions", [])
        return next((c for c in conds if c["type"] == ctype), {})

    try:
        # the highest priorities get what they plan (decode 3); gamma, lowest, gives way at its minimum
        want = {("alpha", "decode"): 3, ("beta", "decode"): 3, ("gamma", "dec"): 1,
                ("alpha", "prefill"): 1, ("beta", "prefill"): 1, ("gamma", "pf"): 1}
        wait_for(lambda: all(replicas(d, s) == n for (d, s), n in want.items())
                 and condition("gamma", "BudgetLimited").get("status") == "True", timeout=60,
                 what="the budget round: alpha and beta served, gamma limited")
        limited = condition("gamma", "BudgetLimited")
        assert limited["reason"] == "FleetGPUBudget" and f"GPU budget of {BUDGET} GPUs" in limited["message"], limited
        for dgd in ("alpha", "beta"):
            assert condition(dgd, "BudgetLimited")["status"] == "False", condition(dgd, "BudgetLimited")
            # not Ready for a moment while its new workers start, then planning and writing again
            wait_for(lambda d=dgd: condition(d, "Planning").get("status") == "True", timeout=30,
                     what=f"{dgd} planning")
        assert sum(want.values()) <= BUDGET
        # the one policy without a DGD is reported, and the others went on
        delta = condition("delta", "Planning")
        assert delta["status"] == "False" and delta["reason"] == "DGDNotFound", delta
        assert f"DynamoGraphDeployment {ns}/no-such-dgd" in delta["message"]

        # per-DGD metrics carry namespace and dgd labels
        text = httpx.get(planner.url + "/metrics", timeout=10).text
        assert f'dynamo_planner_fleet_budget_limited{{dgd="gamma",namespace="{ns}"}} 1.0' in text, text[-3000:]
        assert f'dynamo_planner_target_replicas{{dgd="alpha",namespace="{ns}",service="decode"}} 3.0' in text

        # REST, authorized per namespace/DGD by the API server
        listed = get("/v1/deployments").json()["items"]
        assert sorted(i["name"] for i in listed) == ["alpha", "beta", "gamma"], listed
        assert [i["name"] for i in get("/v1/deployments", "beta-viewer").json()["items"]] == ["beta"]
        assert get(f"/v1/deployments/{ns}/beta/status", "beta-viewer").status_code == 200
        r = get(f"/v1/deployments/{ns}/alpha/status", "beta-viewer")
        assert r.status_code == 403 and "'alpha'" in r.json()["error"], r.text
        r = get(f"/v1/deployments/{ns}/nope/status")
        assert r.status_code == 404 and f"DynamoGraphDeployment {ns}/nope" in r.json()["error"], r.text
        assert httpx.get(planner.url + f"/v1/deployments/{ns}/beta/status", timeout=10).status_code == 401

        # a pin from kubectl on gamma (lowest priority: honoured all the same) and one from REST on alpha
        kubectl.apply(_policy("gamma", pins=[{"pool": "pf", "replicas": 2, "reason": "kubectl pin"}]), ns)
        r = httpx.put(planner.url + f"/v1/deployments/{ns}/alpha/overrides/decode", headers=auth["operator"],
                      json={"replicas": 3, "reason": "rest pin"}, timeout=10)
        assert r.status_code == 200, r.text
        wait_for(lambda: replicas("gamma", "pf") == 2, timeout=30, what="the kubectl pin written")
        # the REST GET shows the kubectl pin; the policy shows the REST pin
        overrides = get(f"/v1/deployments/{ns}/gamma/status").json()["overrides"]
        assert overrides["pf"]["replicas"] == 2 and overrides["pf"]["reason"] == "kubectl pin", overrides
        pins = kubectl.json("-n", ns, "get", "dsp", "alpha")["spec"].get("pins", [])
        assert {"pool": "decode", "replicas": 3} in [{k: p[k] for k in ("pool", "replicas")} for p in pins], pins
        # gamma's pin takes a GPU beta had: beta gives way now, and the total stays within budget
        wait_for(lambda: replicas("beta", "decode") == 2 and condition("beta", "BudgetLimited").get("status") == "True",
                 timeout=30, what="beta cut for gamma's pin")
        total = sum(replicas(d, s) for d, pools in POOLS.items() for s in pools)
        assert total <= BUDGET, total

        # a deleted policy is no longer planned
        kubectl("-n", ns, "delete", "dsp", "beta")
        wait_for(lambda: [i["name"] for i in get("/v1/deployments").json()["items"]] == ["alpha", "gamma"],
                 timeout=30, what="beta dropped after its policy was deleted")
        assert get(f"/v1/deployments/{ns}/beta/status").status_code == 404
    finally:
        planner.stop()
        for f, w in exporters.values():
            f.stop()
            w.stop()
