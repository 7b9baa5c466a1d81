"""Dynamo's own planner deployed as a component of the graph scales that graph's adapters: our
planner (a real `dynamo-scaling planner` process on the real control plane, with the stand-in
operator and the real adapter controller) must not write them, must say why in its decision and
with a Warning Event on the DGD, and must take its pools back once that component is gone.
Run with v1alpha1 and with v1beta1 objects (v1beta1 served through the adapter's conversion
webhook, tests/webhook_support.py), so the planner also reads the DGD in the served version."""

from __future__ import annotations

import json

import pytest
from helpers import wait_for
from planner_process import IdleSeries, PlannerProcess
from planner_support import dgd_ready, spec, writers
from webhook_support import converting_adapter

from adapter import versions
from adapter.sync import OWNER_ANNOTATION

pytestmark = pytest.mark.cluster

TOKEN = "planner-in-graph-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TICKS = 3  # planner decisions to wait through before concluding it did not write
POOLS = {"prefill": 3, "decode": 2}
IN_GRAPH = "DynamoPlanner/llama/Planner"


def dgd(version: str) -> dict:
    meta = {"name": "llama"}
    if version == versions.V1ALPHA1:
        return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": meta,
                "spec": {"services": {
                    "Frontend": {"componentType": "frontend", "replicas": 1},
                    "Planner": {"componentType": "planner", "replicas": 1},
                    **{svc: {"componentType": "worker", "subComponentType": svc, "replicas": n,
                             "scalingAdapter": {"enabled": True}} for svc, n in POOLS.items()}}}}
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "metadata": meta,
            "spec": {"components": [
                {"name": "Frontend", "type": "frontend", "replicas": 1},
                {"name": "Planner", "type": "planner", "replicas": 1},
                *({"name": svc, "type": "worker", "subComponentType": svc, "replicas": n, "scalingAdapter": {}}
                  for svc, n in POOLS.items())]}}


def remove_planner_component(kubectl, ns: str, version: str) -> None:
    resource = f"dynamographdeployments.{version}.nvidia.com"
    if version == versions.V1ALPHA1:
        path = "/spec/services/Planner"
    else:
        comps = kubectl.json("-n", ns, "get", resource, "llama")["spec"]["components"]
        path = f"/spec/components/{next(i for i, c in enumerate(comps) if c['name'] == 'Planner')}"
    kubectl("-n", ns, "patch", resource, "llama", "--type=json", "-p", json.dumps([{"op": "remove", "path": path}]))


@pytest.fixture(params=[versions.V1ALPHA1, versions.V1BETA1])
def version(request):
    return request.param


@pytest.fixture()
def controller(request, cluster, kubectl, namespace, adapter_kubeconfig, version, tmp_path):
    """The adapter controller; for v1beta1 with its conversion webhook and v1beta1 served."""
    if version == versions.V1ALPHA1:
        yield request.getfixturevalue("adapter")
        return
    with converting_adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path) as proc:
        yield proc
    kubectl.run("delete", "clusterrole,clusterrolebinding", f"{namespace}-adapter", check=False)





def dgd_events(kubectl, ns: str, reason: str) -> list[dict]:
    return [e for e in kubectl.json("-n", ns, "get", "events")["items"]
            if e["reason"] == reason and e["involvedObject"]["kind"] == "DynamoGraphDeployment"
            and e["involvedObject"]["name"] == "llama"]


def test_in_graph_planner_keeps_our_planner_off_its_adapters(cluster, kubectl, namespace, controller, standin,
                                                              prometheus, tmp_path, version):
    kubectl.apply(dgd(version), namespace)
    wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llama-prefill", "llama-decode",
                                 check=False).returncode == 0, what="adapters created by the controller")
    wait_for(lambda: dgd_ready(kubectl, namespace), what="DGD Ready")
    # claimed for the planner: only the in-graph planner may hold it back
    for svc in POOLS:
        kubectl("-n", namespace, "annotate", "dgdsa", f"llama-{svc}", f"{OWNER_ANNOTATION}=planner")
    idle = IdleSeries(prometheus, tmp_path / "exporters", namespace)
    (tmp_path / "token").write_text(TOKEN)
    proc = PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, tmp_path, token_file=tmp_path / "token")
    proc.start()
    try:
        newest = wait_for(lambda: (d := proc.decisions(AUTH)) and len(d) >= TICKS and d[0],
                          timeout=10 * TICKS * proc.cfg["planner"]["interval_s"], what=f"{TICKS} decisions")
        for svc, n in POOLS.items():
            assert f"{svc} not written: also scaled by {IN_GRAPH}" in newest["reason"], newest
            assert newest["targets"][svc] < n, newest  # idle: it would scale down if it could
            assert spec(kubectl, namespace, svc) == n
            assert "dynamo-scaling-planner" not in writers(kubectl, namespace, svc)
        assert not newest["applied"]
        events = wait_for(lambda: len(e := dgd_events(kubectl, namespace, "PlannerInGraphPlanner")) >= 2 and e,
                          timeout=10, what="InGraphPlanner Events on the DGD")
        assert all(e["type"] == "Warning" and IN_GRAPH in e["message"] for e in events), events
        assert {svc for svc in POOLS if any(e["message"].startswith(f"{svc} ") for e in events)} == set(POOLS)
        assert len(events) == 2, "one Event per pool, not one per decision"

        # the in-graph planner removed from the graph: ours takes its pools back
        remove_planner_component(kubectl, namespace, version)
        wait_for(lambda: all(spec(kubectl, namespace, svc) < n for svc, n in POOLS.items()),
                 timeout=30, what="the planner writes again")
        assert "dynamo-scaling-planner" in writers(kubectl, namespace, "prefill")
        wait_for(lambda: len(dgd_events(kubectl, namespace, "PlannerInGraphPlannerGone")) == 2,
                 timeout=10, what="InGraphPlannerGone Events")
    finally:
        proc.stop()
        idle.stop()
