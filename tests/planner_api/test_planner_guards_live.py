"""When the planner must keep its hands off, live: a real `dynamo-scaling planner` process, the
real control plane, the stand-in operator, and (for conflicts) the real adapter controller.

- another autoscaler (an HPA, a KEDA ScaledObject) targets an adapter the planner claims: the
  adapter reports ConflictingScalers (condition and Event) and the planner does not write it;
- the DGD is not Ready: the planner writes nothing and says why, then resumes once it is Ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import wait_for
from planner_process import IdleSeries, PlannerProcess
from planner_support import DGD, dgd_ready, spec, writers

from adapter.sync import OWNER_ANNOTATION
from devcluster.manifests import ANNOTATION_STARTUP

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
TOKEN = "planner-guards-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TICKS = 3  # planner decisions to wait through before concluding it did not write
KIND = "DynamoGraphDeploymentScalingAdapter"

@pytest.fixture()
def keda_crd(kubectl) -> None:
    """KEDA's ScaledObject CRD (the test stand-in of tests/helm/data); no KEDA controller: what the
    adapter and the planner look at is an object whose spec.scaleTargetRef names the adapter."""
    if kubectl.run("get", "crd", "scaledobjects.keda.sh", check=False).returncode != 0:
        kubectl("apply", "--server-side", "--field-manager=dynamo-scaling-tests",
                "-f", str(REPO / "tests" / "helm" / "data" / "keda-scaledobject-crd.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/scaledobjects.keda.sh")


@pytest.fixture()
def idle(prometheus, namespace, tmp_path):
    """The deployment's series present and idle, so that the planner has something to decide on."""
    series = IdleSeries(prometheus, tmp_path / "exporters", namespace)
    yield series
    series.stop()


def planner(cluster, namespace, prometheus, tmp_path) -> PlannerProcess:
    (tmp_path / "token").write_text(TOKEN)
    return PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, tmp_path, token_file=tmp_path / "token")





def scaling_active(kubectl, ns: str, svc: str) -> dict:
    conds = kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}").get("status", {}).get("conditions", [])
    return next((c for c in conds if c["type"] == "ScalingActive"), {})


def wait_ticks(proc: PlannerProcess, after: int) -> list[dict]:
    """The decision history once the planner has decided TICKS more times than `after`."""
    return wait_for(lambda: (d := proc.decisions(AUTH)) and len(d) >= after + TICKS and d,
                    timeout=10 * TICKS * proc.cfg["planner"]["interval_s"], what=f"{TICKS} more decisions")


def test_other_autoscalers_on_claimed_adapters_are_reported_and_not_fought(
        cluster, kubectl, namespace, keda_crd, standin, adapter, prometheus, idle, tmp_path):
    kubectl.apply(DGD, namespace)
    wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llama-prefill", "llama-decode",
                                 check=False).returncode == 0, what="adapters created by the controller")
    wait_for(lambda: dgd_ready(kubectl, namespace), what="DGD Ready")
    for svc in ("prefill", "decode"):
        kubectl("-n", namespace, "annotate", "dgdsa", f"llama-{svc}", f"{OWNER_ANNOTATION}=planner")
    proc = planner(cluster, namespace, prometheus, tmp_path).start()
    try:
        # alone on its claimed adapters, the planner writes them (idle: both pools to the minimum)
        wait_for(lambda: spec(kubectl, namespace, "prefill") == 1 and spec(kubectl, namespace, "decode") == 1,
                 timeout=30, what="the planner scales both adapters to 1")
        assert all(scaling_active(kubectl, namespace, s).get("reason") != "ConflictingScalers"
                   for s in ("prefill", "decode"))

        target = {"apiVersion": "nvidia.com/v1alpha1", "kind": KIND}
        kubectl.apply([
            {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "prefill-hpa"},
             "spec": {"scaleTargetRef": {**target, "name": "llama-prefill"}, "minReplicas": 1, "maxReplicas": 8,
                      # no metrics server here: the HPA never writes a replica count inside its bounds
                      "metrics": [{"type": "External", "external": {
                          "metric": {"name": "dynamo_queue_depth"},
                          "target": {"type": "AverageValue", "averageValue": "2"}}}]}},
            {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "decode-so"},
             "spec": {"scaleTargetRef": {**target, "name": "llama-decode"}, "minReplicaCount": 1, "maxReplicaCount": 8,
                      "triggers": [{"type": "prometheus", "metadata": {
                          "serverAddress": prometheus.url, "query": "sum(dynamo_queue_depth)", "threshold": "2"}}]}},
        ], namespace)

        # the adapter controller reports both conflicts, naming the scalers, as a condition and an Event
        other = {"prefill": "HorizontalPodAutoscaler/prefill-hpa", "decode": "ScaledObject/decode-so"}
        for svc, scaler in other.items():
            c = wait_for(lambda: (c := scaling_active(kubectl, namespace, svc)).get("reason") == "ConflictingScalers"
                         and c, timeout=30, what=f"ConflictingScalers on llama-{svc}")
            assert c["status"] == "False" and scaler in c["message"] and "planner" in c["message"], c
        events = kubectl.json("-n", namespace, "get", "events")["items"]
        for svc, scaler in other.items():
            assert any(e["reason"] == "ConflictingScalers" and e["involvedObject"]["name"] == f"llama-{svc}"
                       and e["type"] == "Warning" and scaler in e["message"] for e in events), svc

        # the planner sees them too and stops writing: another scaler's value stays
        for svc in other:
            kubectl("-n", namespace, "scale", "dgdsa", f"llama-{svc}", "--replicas=3")
        seen = len(proc.decisions(AUTH))
        newest = wait_ticks(proc, seen)[0]
        for svc, scaler in other.items():
            assert f"{svc} not written: also scaled by {scaler}" in newest["reason"], newest
            assert newest["targets"][svc] < 3, newest  # it would have scaled down
            assert spec(kubectl, namespace, svc) == 3
            assert "dynamo-scaling-planner" not in writers(kubectl, namespace, svc)
        assert not newest["applied"]

        # the other scalers gone, the planner takes its adapters back and the conflicts clear
        kubectl("-n", namespace, "delete", "hpa", "prefill-hpa")
        kubectl("-n", namespace, "delete", "scaledobject", "decode-so")
        wait_for(lambda: spec(kubectl, namespace, "prefill") < 3 and spec(kubectl, namespace, "decode") < 3,
                 timeout=30, what="the planner writes again")
        for svc in other:
            wait_for(lambda: scaling_active(kubectl, namespace, svc).get("reason") not in (None, "ConflictingScalers"),
                     timeout=30, what=f"conflict on llama-{svc} cleared")
    finally:
        proc.stop()
        kubectl.run("-n", namespace, "delete", "hpa", "--all", check=False)


def test_not_ready_deployment_is_left_alone_until_ready(cluster, kubectl, namespace, standin, prometheus, idle,
                                                      tmp_path):
    kubectl.apply(DGD, namespace)
    kubectl.apply([{"apiVersion": "nvidia.com/v1alpha1", "kind": KIND, "metadata": {"name": f"llama-{svc}"},
                    "spec": {"replicas": n, "dgdRef": {"name": "llama", "serviceName": svc}}}
                   for svc, n in (("prefill", 3), ("decode", 2))], namespace)
    wait_for(lambda: dgd_ready(kubectl, namespace), what="DGD Ready")
    # a new frontend pod that does not become Ready (the stand-in's start-up delay, per DGD)
    kubectl("-n", namespace, "annotate", "dgd", "llama", f"{ANNOTATION_STARTUP}=3600")
    kubectl("-n", namespace, "patch", "dgd", "llama", "--type=merge",
            "-p", json.dumps({"spec": {"services": {"Frontend": {"replicas": 2}}}}))
    wait_for(lambda: not dgd_ready(kubectl, namespace), what="DGD not Ready")

    proc = planner(cluster, namespace, prometheus, tmp_path).start()
    try:
        history = wait_ticks(proc, 0)
        for d in history:
            assert not d["applied"] and "not written: deployment not ready" in d["reason"], d
        assert history[0]["targets"]["prefill"] < 3, history[0]  # idle: it would scale down if it could
        assert (spec(kubectl, namespace, "prefill"), spec(kubectl, namespace, "decode")) == (3, 2)
        assert all("dynamo-scaling-planner" not in writers(kubectl, namespace, s) for s in ("prefill", "decode"))

        # the frontend pod becomes Ready, so does the DGD, and the planner acts
        kubectl("-n", namespace, "annotate", "--overwrite", "dgd", "llama", f"{ANNOTATION_STARTUP}=0")
        wait_for(lambda: dgd_ready(kubectl, namespace), what="DGD Ready again")
        wait_for(lambda: spec(kubectl, namespace, "prefill") == 1 and spec(kubectl, namespace, "decode") == 1,
                 timeout=30, what="the planner scales down once Ready")
        assert "dynamo-scaling-planner" in writers(kubectl, namespace, "prefill")
    finally:
        proc.stop()
