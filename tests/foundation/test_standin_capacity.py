"""The stand-in operator with a GPU capacity: pods beyond it are created but stay Pending and
unschedulable, as kube-scheduler leaves them, until capacity frees up or is raised at run time."""

from __future__ import annotations

import json
import time

import pytest
from helpers import wait_for
from standin_capacity import CappedStandin

pytestmark = pytest.mark.cluster

STARTUP_S = 1.0
MESSAGE = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."

DGD = {
    "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
    "metadata": {"name": "llama"},
    "spec": {"services": {
        "Frontend": {"componentType": "frontend", "replicas": 1},  # no GPU
        "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 1,
                    "resources": {"limits": {"gpu": "3"}}},
        "decode": {"componentType": "worker", "subComponentType": "decode", "replicas": 1},  # 1 GPU each
    }},
}


@pytest.fixture()
def capped_standin(cluster, kubectl, namespace):
    """The stand-in operator with 4 GPUs, changeable at run time."""
    standin = CappedStandin(cluster, kubectl, namespace, gpus=4, startup_delay_s=STARTUP_S)
    yield standin
    standin.stop()


def _pods(kubectl, ns: str, svc: str) -> list[dict]:
    return [p for p in kubectl.json("-n", ns, "get", "pods", "-l", f"nvidia.com/dynamo-component={svc}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def _cond(pod: dict, kind: str) -> dict:
    return next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _ready(pod: dict) -> bool:
    return _cond(pod, "Ready").get("status") == "True"


def _unschedulable(kubectl, ns: str, svc: str) -> list[dict]:
    return [p for p in _pods(kubectl, ns, svc) if _cond(p, "PodScheduled").get("reason") == "Unschedulable"]


def _dgd_status(kubectl, ns: str) -> dict:
    return kubectl.json("-n", ns, "get", "dgd", "llama").get("status", {})


def _scale(kubectl, ns: str, svc: str, replicas: int) -> None:
    kubectl("-n", ns, "patch", "dgd", "llama", "--type=merge",
            "-p", json.dumps({"spec": {"services": {svc: {"replicas": replicas}}}}))


def _fill(kubectl, ns: str) -> None:
    """The DGD up within its 4 GPUs (prefill takes 3, decode 1, the frontend none), then a second
    decode pod that does not fit."""
    kubectl.apply(DGD, ns)
    wait_for(lambda: _dgd_status(kubectl, ns).get("state") == "successful", what="DGD successful")
    _scale(kubectl, ns, "decode", 2)


def test_pods_beyond_the_gpus_stay_unschedulable_until_capacity_is_raised(kubectl, namespace, capped_standin):
    _fill(kubectl, namespace)
    wait_for(lambda: len(_unschedulable(kubectl, namespace, "decode")) == 1, what="one decode pod unschedulable")
    wait_for(lambda: sum(map(_ready, _pods(kubectl, namespace, "decode"))) == 1, what="the other decode pod Ready")
    assert all(map(_ready, _pods(kubectl, namespace, "prefill") + _pods(kubectl, namespace, "Frontend")))
    stuck = _unschedulable(kubectl, namespace, "decode")[0]
    cond = _cond(stuck, "PodScheduled")
    assert cond["status"] == "False" and cond["message"] == MESSAGE and cond.get("lastTransitionTime")
    assert stuck["status"]["phase"] == "Pending" and not stuck["spec"].get("nodeName")
    assert _dgd_status(kubectl, namespace)["services"]["decode"]["readyReplicas"] == 1
    assert _dgd_status(kubectl, namespace)["state"] == "pending"
    # it stays so: nothing runs for it (a margin of three start-up delays, a dozen reconcile passes)
    pod_name = stuck["metadata"]["name"]
    deadline = time.monotonic() + 3 * STARTUP_S
    while time.monotonic() < deadline:
        p = kubectl.json("-n", namespace, "get", "pod", pod_name)
        assert not _ready(p) and not p["spec"].get("nodeName"), p["status"]
        time.sleep(0.5)

    # capacity raised at run time: the pod is scheduled (the API server's binding), then Ready
    capped_standin.set_gpus(5)
    wait_for(lambda: _dgd_status(kubectl, namespace).get("state") == "successful", what="DGD successful")
    pod = kubectl.json("-n", namespace, "get", "pod", pod_name)
    assert pod["spec"]["nodeName"] and _cond(pod, "PodScheduled")["status"] == "True" and _ready(pod)

    # a raise beyond the GPUs leaves the new pod unschedulable; lowering again removes that pod,
    # not a Ready one, and the DGD is whole again
    ready_before = {p["metadata"]["name"] for p in _pods(kubectl, namespace, "decode")}
    _scale(kubectl, namespace, "decode", 3)
    wait_for(lambda: len(_unschedulable(kubectl, namespace, "decode")) == 1, what="the third decode pod unschedulable")
    _scale(kubectl, namespace, "decode", 2)
    wait_for(lambda: {p["metadata"]["name"] for p in _pods(kubectl, namespace, "decode")} == ready_before,
             what="the unschedulable pod removed, the Ready ones kept")
    wait_for(lambda: _dgd_status(kubectl, namespace).get("state") == "successful", what="DGD successful again")


def test_freed_gpus_schedule_a_waiting_pod(kubectl, namespace, capped_standin):
    _fill(kubectl, namespace)
    wait_for(lambda: len(_unschedulable(kubectl, namespace, "decode")) == 1, what="one decode pod unschedulable")
    waiting = _unschedulable(kubectl, namespace, "decode")[0]["metadata"]["name"]
    # prefill gone: its 3 GPUs go to the waiting decode pod once the prefill pod is removed
    _scale(kubectl, namespace, "prefill", 0)
    wait_for(lambda: _ready(kubectl.json("-n", namespace, "get", "pod", waiting)), what="the waiting pod Ready")
    assert _unschedulable(kubectl, namespace, "decode") == []
