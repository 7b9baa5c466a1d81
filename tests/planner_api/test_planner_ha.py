"""Two `dynamo-scaling planner` processes with leader election against the real control plane
and a real Prometheus: only the leader plans and writes, the standby serves the API (its changes
reach the leader through the DynamoScalingPolicy), and when the leader is killed mid scale-up the
standby takes over within the lease and carries the scale-up on from the cluster's state, every
change written once."""

from __future__ import annotations

import httpx
import pytest
from helpers import wait_for
from leader_support import (
    INTERVAL_S,
    TAKEOVER_S,
    SpecWatch,
    adapter,
    decode_load,
    election_flags,
)
from planner_process import PlannerProcess
from planner_support import AUTH, DGD, TOKEN, IdleDeployment, metric

from devcluster.prometheus import Prometheus

pytestmark = pytest.mark.cluster


@pytest.fixture()
def prometheus(tmp_path):
    with Prometheus(tmp_path / "prom") as p:
        yield p


@pytest.fixture()
def deployment(prometheus, kubectl, namespace, standin, tmp_path):
    """DGD llama Ready (two decode workers), its adapters at 1 prefill / 2 decode, and its series."""
    kubectl.apply(DGD, namespace)
    kubectl.apply([adapter("llama", "prefill", 1), adapter("llama", "decode", 2)], namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state")
             == "successful", what="DGD ready")
    dep = IdleDeployment(prometheus, tmp_path / "exporters", namespace)  # the decode queue is the load
    yield dep
    dep.stop()


def _planner(cluster, namespace, prometheus, workdir) -> PlannerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "token").write_text(TOKEN)
    return PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, workdir, token_file=workdir / "token",
                          tls="off", planner={"interval_s": INTERVAL_S}, extra=election_flags(namespace))


def _status(p: PlannerProcess) -> dict:
    return httpx.get(p.url + "/v1/status", headers=AUTH, timeout=5).json()


def _written(p: PlannerProcess) -> float:
    return metric(p.url, 'dynamo_planner_decisions_total{outcome="written"}')


def _decisions(p: PlannerProcess) -> float:
    return metric(p.url, "dynamo_planner_decisions_total")


def _spec(kubectl, ns: str, svc: str) -> int:
    return kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]


def _leader_and_standby(cluster, namespace, prometheus, tmp_path) -> tuple[PlannerProcess, PlannerProcess]:
    # start-up reads and creates the policy: slow on a loaded machine, hence the longer wait
    first = _planner(cluster, namespace, prometheus, tmp_path / "a").start(timeout=90)
    wait_for(lambda: _status(first)["leader"], timeout=TAKEOVER_S, what="the first planner leads")
    second = _planner(cluster, namespace, prometheus, tmp_path / "b").start(timeout=90)
    def seen() -> dict | None:
        st = _status(second)
        return st if st["leader_election"]["holder"] else None

    st = wait_for(seen, timeout=30, what="the standby sees the holder")
    assert st["leader"] is False and st["leader_election"]["holder"] == _status(first)["leader_election"]["identity"]
    return first, second


def test_only_the_leader_plans_and_the_standby_serves_the_api(cluster, kubectl, namespace, deployment, prometheus,
                                                              tmp_path):
    deployment.workers.set(decode_load(5))
    leader, standby = _leader_and_standby(cluster, namespace, prometheus, tmp_path)
    try:
        wait_for(lambda: _spec(kubectl, namespace, "decode") == 3, timeout=30, what="the leader scales decode")
        # both are ready; the standby says it is not the leader, on the API and in its metrics
        for p, leads in ((leader, 1), (standby, 0)):
            assert httpx.get(p.url + "/readyz", timeout=5).status_code == 200
            assert metric(p.url, "dynamo_planner_leader") == leads

        # a change made on the standby goes to the policy, and the leader applies it
        r = httpx.put(standby.url + "/v1/overrides/prefill", json={"replicas": 2, "reason": "ha test"},
                      headers=AUTH, timeout=10)
        assert r.status_code == 200, r.text
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 2, timeout=30, what="the leader applies the pin")
        assert _status(leader)["overrides"]["prefill"]["replicas"] == 2
        # several of the standby's loop periods later it has still decided and written nothing
        before = _decisions(leader)
        wait_for(lambda: _decisions(leader) >= before + 3, timeout=30, what="the leader's next ticks")
        assert _decisions(standby) == 0 and _written(standby) == 0
        assert httpx.get(standby.url + "/v1/decisions", headers=AUTH, timeout=5).json()["items"] == []
        policy = kubectl.json("-n", namespace, "get", "dynamoscalingpolicy", "llama")
        assert policy["status"]["plan"] == {"prefill": 2, "decode": 3}
    finally:
        leader.stop()
        standby.stop()


def test_standby_takes_over_a_killed_leader_mid_scale_up(cluster, kubectl, kube_api, namespace, deployment,
                                                         prometheus, tmp_path):
    decode = SpecWatch(kube_api, namespace, "llama-decode")
    wait_for(lambda: decode.seen() == [2], timeout=10, what="the watch on the decode adapter")
    deployment.workers.set(decode_load(5))
    leader, standby = _leader_and_standby(cluster, namespace, prometheus, tmp_path)
    try:
        wait_for(lambda: _spec(kubectl, namespace, "decode") == 3, timeout=30, what="the leader scales decode")
        deployment.workers.set(decode_load(15))
        wait_for(lambda: _spec(kubectl, namespace, "decode") == 5, timeout=30, what="the leader scales decode on")
        wait_for(lambda: _written(leader) == 2, timeout=10, what="the leader counts its two writes")
        assert _decisions(standby) == 0  # the standby decided nothing while the leader lived
        last = kubectl.json("-n", namespace, "get", "dynamoscalingpolicy", "llama")["status"]["lastDecision"]

        # mid scale-up: the leader dies without a word, and the load keeps rising
        leader.proc.kill()
        leader.proc.wait(10)
        deployment.workers.set(decode_load(30))
        wait_for(lambda: _status(standby)["leader"], timeout=TAKEOVER_S, what="the standby takes over")
        holder = kubectl.json("-n", namespace, "get", "lease", "dynamo-scaling-planner")["spec"]["holderIdentity"]
        assert holder == _status(standby)["leader_election"]["identity"]
        wait_for(lambda: _spec(kubectl, namespace, "decode") == 8, timeout=30, what="the new leader scales on")

        # the new leader started from the cluster's 5, not from what it saw at its own start
        wait_for(lambda: decode.seen()[-1:] == [8], timeout=10, what="the watch sees 8")
        assert decode.seen() == [2, 3, 5, 8]
        assert _written(standby) == 1  # each change written once: 2 by the old leader, 1 by the new
        def policy_status() -> dict | None:
            st = kubectl.json("-n", namespace, "get", "dynamoscalingpolicy", "llama")["status"]
            return st if st["plan"]["decode"] == 8 else None

        status = wait_for(policy_status, timeout=30, what="the new leader's policy status")
        assert status["lastDecision"]["time"] > last["time"]
    finally:
        decode.stop()
        leader.stop()
        standby.stop()
