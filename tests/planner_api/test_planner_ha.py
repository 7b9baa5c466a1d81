"""Two `dynamo-scaling planner` processes with leader election against the real control plane
and a real Prometheus: only the leader plans and writes, the standby serves the API (its changes
reach the leader through the DynamoScalingPolicy), and when the leader is killed mid scale-up the
standby takes over within the lease and carries the scale-up on from the cluster's state, every
change written once."""

from __future__ import annotations

import threading

import httpx
import pytest
from helpers import wait_for
from kubernetes import client, watch
from planner_process import PlannerProcess
from planner_support import AUTH, DGD, TOKEN, IdleDeployment, metric, worker_series

from adapter.models import DGDSA_PLURAL, GROUP
from devcluster.prometheus import Prometheus

pytestmark = pytest.mark.cluster

# short periods so a takeover fits a test; retry < renew deadline < lease, as the flags require
LEASE_S, RENEW_DEADLINE_S, RETRY_S = 6.0, 4.0, 1.0
INTERVAL_S = 1.0  # the planners' tick (PlannerProcess)
# a standby takes the lease after seeing it unrenewed for LEASE_S (counted from its next try),
# then plans on its next tick; the rest is slack for two loaded cores
TAKEOVER_S = LEASE_S + 2 * RETRY_S + 2 * INTERVAL_S + 20


def _adapter(svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"llama-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": "llama", "serviceName": svc}}}


def decode_load(waiting: int) -> list[dict]:
    """Idle prefill; decode workers at 80% KV with 10 running and `waiting` queued requests:
    with two Ready decode workers the planner wants 2 * (1 + waiting / 10) of them."""
    kv = {"name": "vllm:kv_cache_usage_perc", "value": 0.8, "labels": {"service": "decode", "model_name": "m"}}
    series = [s for s in worker_series("prefill", "decode") if s["labels"]["service"] == "prefill"]
    series += [{"name": "vllm:num_requests_running", "value": 10, "labels": {"service": "decode", "model_name": "m"}},
               {"name": "vllm:num_requests_waiting", "value": waiting,
                "labels": {"service": "decode", "model_name": "m"}}, kv]
    return series


@pytest.fixture()
def prometheus(tmp_path):
    with Prometheus(tmp_path / "prom") as p:
        yield p


@pytest.fixture()
def deployment(prometheus, kubectl, namespace, standin, tmp_path):
    """DGD llama Ready (two decode workers), its adapters at 1 prefill / 2 decode, and its series."""
    kubectl.apply(DGD, namespace)
    kubectl.apply([_adapter("prefill", 1), _adapter("decode", 2)], namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state")
             == "successful", what="DGD ready")
    dep = IdleDeployment(prometheus, tmp_path / "exporters", namespace)  # the decode queue is the load
    yield dep
    dep.stop()


def _planner(cluster, namespace, prometheus, workdir) -> PlannerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "token").write_text(TOKEN)
    return PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, workdir, token_file=workdir / "token",
                          tls="off", planner={"interval_s": INTERVAL_S},
                          extra=("--leader-election", "--leader-election-namespace", namespace,
                                 "--leader-election-lease-duration", str(LEASE_S),
                                 "--leader-election-renew-deadline", str(RENEW_DEADLINE_S),
                                 "--leader-election-retry-period", str(RETRY_S)))


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


class SpecWatch:
    """Every spec.replicas the adapter takes, from a watch on it (a write that changes nothing
    leaves no trace, so this sees each change once)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.values: list[int] = []
        self.error: Exception | None = None
        self._w = watch.Watch()
        custom = client.CustomObjectsApi(api)
        self._stream = self._w.stream(custom.list_namespaced_custom_object, GROUP, "v1alpha1", namespace,
                                      DGDSA_PLURAL, field_selector=f"metadata.name={name}", timeout_seconds=600)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._stream:
                n = ev["object"]["spec"]["replicas"]
                if not self.values or self.values[-1] != n:
                    self.values.append(n)
        except Exception as exc:  # noqa: BLE001  a broken watch is a failed test, not a thread's traceback
            self.error = exc

    def seen(self) -> list[int]:
        assert self.error is None, f"the watch on the adapter broke: {self.error}"
        return list(self.values)

    def stop(self) -> None:
        self._w.stop()


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
