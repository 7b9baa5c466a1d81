"""Two fleet-mode `dynamo-scaling planner` processes with leader election, planning two DGDs in
one GPU budget on the real control plane with a real Prometheus: only the leader plans and
writes while the standby serves each DGD's API; when the leader is killed mid scale-up the
standby takes over within the lease and carries on every DGD's plan from the cluster's state
(budget kept, no adapter stepping back, the policies' lastDecision moving on); and a leader
stopped cleanly (SIGTERM) releases the lease so the standby leads at its next retry."""

from __future__ import annotations

import signal

import httpx
import pytest
from exporter_process import Exporter
from helpers import wait_for
from leader_support import (
    INTERVAL_S,
    RETRY_S,
    TAKEOVER_S,
    SpecWatch,
    adapter,
    decode_load,
    dgd,
    election_flags,
)
from planner_process import PlannerProcess
from planner_support import AUTH, TOKEN, frontend_series, metric

pytestmark = pytest.mark.cluster

BUDGET = 14
PRIORITY = {"alpha": 10, "beta": 0}


def _policy(name: str) -> dict:
    return {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
            "metadata": {"name": name},
            "spec": {"dgdRef": {"name": name}, "sla": {"ttftMs": 500, "itlMs": 50}, "priority": PRIORITY[name]}}


@pytest.fixture()
def fleet(kubectl, namespace, standin, prometheus, tmp_path):
    """DGDs alpha and beta Ready (two decode workers each), their adapters at 1 prefill / 2
    decode, their policies, and each DGD's frontend and workers scraped: decode load as each
    test sets it through the returned exporters."""
    dgds = [dgd(n) for n in PRIORITY]
    for d in dgds:  # its pods hold the budget's GPUs: as many as the adapter asks for (no controller syncs them)
        d["spec"]["services"]["prefill"]["replicas"] = 1
    kubectl.apply(dgds, namespace)
    kubectl.apply([adapter(n, svc, k) for n in PRIORITY for svc, k in (("prefill", 1), ("decode", 2))], namespace)
    kubectl.apply([_policy(n) for n in PRIORITY], namespace)
    exporters = {n: (Exporter(tmp_path / n / "frontend", frontend_series()),
                     Exporter(tmp_path / n / "workers", decode_load(0))) for n in PRIORITY}
    prometheus.set_targets("frontend", [(f.address, {"namespace": namespace, "dgd": n, "service": "Frontend"})
                                        for n, (f, _) in exporters.items()])
    prometheus.set_targets("workers", [(w.address, {"namespace": namespace, "dgd": n})
                                       for n, (_, w) in exporters.items()])
    prometheus.wait_for_targets("frontend", 2)
    prometheus.wait_for_targets("workers", 2)
    wait_for(lambda: all(kubectl.json("-n", namespace, "get", "dgd", n).get("status", {}).get("state")
                         == "successful" for n in PRIORITY), what="DGDs ready")
    yield {n: w for n, (_, w) in exporters.items()}
    for f, w in exporters.values():
        f.stop()
        w.stop()


def _planner(cluster, namespace, prometheus, workdir, **periods) -> PlannerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "token").write_text(TOKEN)
    return PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, workdir, token_file=workdir / "token",
                          tls="off", planner={"interval_s": INTERVAL_S},
                          config={"fleet": {"namespaces": [namespace], "gpu_budget": BUDGET, "resync_s": 1}},
                          extra=election_flags(namespace, **periods))


def _leads(p: PlannerProcess) -> bool:
    return metric(p.url, "dynamo_planner_leader") == 1


def _status(p: PlannerProcess, ns: str, name: str) -> dict:
    r = httpx.get(f"{p.url}/v1/deployments/{ns}/{name}/status", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _leader_and_standby(cluster, namespace, prometheus, tmp_path, **periods) -> tuple[PlannerProcess, PlannerProcess]:
    # start-up reads the policies: slow on a loaded machine, hence the longer wait
    first = _planner(cluster, namespace, prometheus, tmp_path / "a", **periods).start(timeout=90)
    wait_for(lambda: _leads(first), timeout=TAKEOVER_S, what="the first planner leads")
    second = _planner(cluster, namespace, prometheus, tmp_path / "b", **periods).start(timeout=90)
    # the standby lists the policies itself and serves each DGD's API, naming the leader
    wait_for(lambda: [i["name"] for i in httpx.get(second.url + "/v1/deployments", headers=AUTH,
                                                     timeout=10).json()["items"]] == ["alpha", "beta"],
             timeout=30, what="the standby lists both DGDs")
    st = wait_for(lambda: (s := _status(second, namespace, "alpha"))["leader_election"]["holder"] and s,
                  timeout=30, what="the standby sees the holder")
    assert st["leader"] is False
    assert st["leader_election"]["holder"] == _status(first, namespace, "alpha")["leader_election"]["identity"]
    return first, second


def _replicas(kubectl, ns: str, name: str) -> int:
    return kubectl.json("-n", ns, "get", "dgdsa", name)["spec"]["replicas"]


def _policy_status(kubectl, ns: str, name: str) -> dict:
    return kubectl.json("-n", ns, "get", "dynamoscalingpolicy", name).get("status", {})


def _condition(kubectl, ns: str, name: str, ctype: str) -> dict:
    return next((c for c in _policy_status(kubectl, ns, name).get("conditions", []) if c["type"] == ctype), {})


def test_fleet_standby_takes_over_a_killed_leader_and_carries_every_plan_on(cluster, kubectl, kube_api, namespace,
                                                                            fleet, prometheus, tmp_path):
    names = [f"{n}-{svc}" for n in PRIORITY for svc in ("prefill", "decode")]
    watches = {name: SpecWatch(kube_api, namespace, name) for name in names}
    wait_for(lambda: all(w.seen() for w in watches.values()), timeout=10, what="the watches on the adapters")
    for w in fleet.values():
        w.set(decode_load(5))  # each DGD wants 3 decode workers
    leader, standby = _leader_and_standby(cluster, namespace, prometheus, tmp_path)
    try:
        wait_for(lambda: _replicas(kubectl, namespace, "alpha-decode") == 3
                 and _replicas(kubectl, namespace, "beta-decode") == 3, timeout=30, what="the leader plans both")
        fleet["alpha"].set(decode_load(15))  # alpha on to 5
        wait_for(lambda: _replicas(kubectl, namespace, "alpha-decode") == 5, timeout=30, what="alpha scales on")
        # the standby decided and wrote nothing, but is ready and serves the API
        assert metric(standby.url, "dynamo_planner_decisions_total") == 0
        assert httpx.get(standby.url + "/readyz", timeout=5).status_code == 200
        assert _status(standby, namespace, "beta")["last_decision"] is None
        before = {}
        for n in PRIORITY:
            before[n] = wait_for(lambda n=n: _policy_status(kubectl, namespace, n).get("lastDecision"), timeout=30,
                                 what=f"{n}'s policy status")

        # mid scale-up the leader dies without a word; both loads rise, beyond the budget together
        leader.proc.kill()
        leader.proc.wait(10)
        fleet["alpha"].set(decode_load(30))  # alpha (priority 10) wants 1 + 8
        fleet["beta"].set(decode_load(15))  # beta (priority 0) wants 1 + 5: one over the budget of 14
        wait_for(lambda: _leads(standby), timeout=TAKEOVER_S, what="the standby takes over")
        holder = kubectl.json("-n", namespace, "get", "lease", "dynamo-scaling-planner")["spec"]["holderIdentity"]
        assert holder == _status(standby, namespace, "alpha")["leader_election"]["identity"]
        wait_for(lambda: _replicas(kubectl, namespace, "alpha-decode") == 8
                 and _replicas(kubectl, namespace, "beta-decode") == 4
                 and _condition(kubectl, namespace, "beta", "BudgetLimited").get("status") == "True",
                 timeout=60, what="the new leader plans both on, beta cut to the budget")

        # each adapter only went up, from the cluster's values on: nothing stepped back
        wait_for(lambda: watches["alpha-decode"].seen()[-1:] == [8] and watches["beta-decode"].seen()[-1:] == [4],
                 timeout=10, what="the watches see the last writes")
        assert watches["alpha-decode"].seen() == [2, 3, 5, 8]
        assert watches["beta-decode"].seen() == [2, 3, 4]
        assert watches["alpha-prefill"].seen() == [1] and watches["beta-prefill"].seen() == [1]
        # the adapters only rose, so their last values are the most they ever held together
        assert sum(w.seen()[-1] for w in watches.values()) <= BUDGET
        limited = _condition(kubectl, namespace, "beta", "BudgetLimited")
        assert limited["reason"] == "FleetGPUBudget" and f"budget of {BUDGET} GPUs" in limited["message"], limited
        for n in PRIORITY:
            wait_for(lambda n=n: _policy_status(kubectl, namespace, n)["lastDecision"]["time"] > before[n]["time"],
                     timeout=30, what=f"{n}'s lastDecision moves on under the new leader")
    finally:
        for w in watches.values():
            w.stop()
        leader.stop()
        standby.stop()


# a lease far longer than a retry: a standby that leads within a few retries was handed the
# lease, since one left to expire takes the whole lease duration
CLEAN = {"lease_s": 60.0, "renew_deadline_s": 40.0, "retry_s": RETRY_S}
HANDOVER_S = CLEAN["retry_s"] + 2 * INTERVAL_S + 20  # slack for two loaded cores


def test_a_leader_stopped_cleanly_hands_the_lease_to_the_standby_at_its_next_retry(cluster, kubectl, namespace,
                                                                                   fleet, prometheus, tmp_path):
    assert HANDOVER_S < CLEAN["lease_s"] / 2
    for w in fleet.values():
        w.set(decode_load(5))
    leader, standby = _leader_and_standby(cluster, namespace, prometheus, tmp_path, **CLEAN)
    try:
        wait_for(lambda: _replicas(kubectl, namespace, "alpha-decode") == 3, timeout=30, what="the leader plans")
        lease = kubectl.json("-n", namespace, "get", "lease", "dynamo-scaling-planner")["spec"]
        leader.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _leads(standby), timeout=HANDOVER_S, what="the standby leads at its next retry")
        assert leader.proc.wait(30) is not None
        assert "lease released" in (tmp_path / "a" / "planner.log").read_text()
        after = kubectl.json("-n", namespace, "get", "lease", "dynamo-scaling-planner")["spec"]
        assert after["holderIdentity"] == _status(standby, namespace, "alpha")["leader_election"]["identity"]
        assert after["leaseTransitions"] == lease.get("leaseTransitions", 0) + 1
        # and it plans from there
        fleet["alpha"].set(decode_load(15))
        wait_for(lambda: _replicas(kubectl, namespace, "alpha-decode") == 5, timeout=30, what="the new leader plans")
    finally:
        leader.stop()
        standby.stop()
