"""A standby planner shows the DynamoScalingPolicy as it is and writes nothing: its read-only
refresh (`PolicyStore.follow`) against the real API server, and two real planner processes with
leader election where a pin and an SLA applied with kubectl show in the standby's REST status
while the standby leaves the policy (and the Events) untouched, expired pins included; the
leader's refresh still removes an expired REST pin."""

from __future__ import annotations

import datetime as dt
import json
import signal

import httpx
import pytest
from helpers import wait_for
from leader_support import RETRY_S, TAKEOVER_S, adapter, election_flags
from planner_process import PlannerProcess
from planner_support import AUTH, DGD, TOKEN, IdleDeployment, metric

from scaler.control.policy import PolicyStore
from scaler.control.state import ControlState, Override, SLATargets, utcnow

pytestmark = pytest.mark.cluster

INTERVAL_S = 1.0


def _policy(kubectl, ns: str) -> dict:
    return kubectl.json("-n", ns, "get", "dynamoscalingpolicy", "llama", "--show-managed-fields")


def _pins(kubectl, ns: str) -> dict[str, int]:
    return {p["pool"]: p["replicas"] for p in _policy(kubectl, ns)["spec"].get("pins", [])}


def _planner_events(kubectl, ns: str) -> set[str]:
    items = kubectl.json("-n", ns, "get", "events")["items"]
    return {e["metadata"]["name"] for e in items if (e.get("source") or {}).get("component") == "dynamo-scaling-planner"}


def _kubectl_apply(kubectl, ns: str, spec: dict) -> None:
    """Server-side apply as kubectl (a GitOps tool does the same): pins merge by pool, so REST's
    own pins stay REST's alone."""
    body = {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
            "metadata": {"name": "llama"}, "spec": {"dgdRef": {"name": "llama"}, **spec}}
    kubectl("-n", ns, "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(body))


def test_follow_takes_the_spec_and_leaves_expired_pins_in_it(kube_api, kubectl, namespace):
    leader = PolicyStore(kube_api, namespace, "llama")
    state = leader.load(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50)))  # creates the policy
    standby = PolicyStore(kube_api, namespace, "llama")
    seen = standby.load(ControlState(sla=SLATargets(ttft_ms=1, itl_ms=1)))
    # an expired pin only REST owns (the leader's refresh removes such), and kubectl's pin and SLA
    after = ControlState.from_persisted(state.to_persisted(), state.sla)
    after.overrides["prefill"] = Override(replicas=2, expires_at=utcnow() - dt.timedelta(minutes=1))
    state = leader.save_change(state, after)
    _kubectl_apply(kubectl, namespace, {"sla": {"ttftMs": 400, "itlMs": 40},
                                        "pins": [{"pool": "decode", "replicas": 4, "reason": "kubectl"}]})
    before = _policy(kubectl, namespace)

    notes = standby.follow(seen)
    assert (seen.sla.ttft_ms, seen.sla.itl_ms) == (400, 40)
    assert set(seen.overrides) == {"decode"} and seen.overrides["decode"].replicas == 4
    assert notes == ["pin on prefill expired (left in the policy for the leader to remove)"]
    # nothing written: the expired pin and the whole object as they were
    assert _policy(kubectl, namespace)["metadata"] == before["metadata"]
    assert _pins(kubectl, namespace) == {"decode": 4, "prefill": 2}

    # the leader's refresh takes the same spec and removes the expired REST pin
    leader.refresh(state)
    assert set(state.overrides) == {"decode"} and (state.sla.ttft_ms, state.sla.itl_ms) == (400, 40)
    assert _pins(kubectl, namespace) == {"decode": 4}


def _planner(cluster, namespace, prometheus, workdir) -> PlannerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "token").write_text(TOKEN)
    # a lease far longer than the test keeps the leader frozen: the standby cannot take it meanwhile
    flags = election_flags(namespace, lease_s=120.0, renew_deadline_s=90.0, retry_s=RETRY_S)
    return PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, workdir, token_file=workdir / "token",
                          tls="off", planner={"interval_s": INTERVAL_S}, extra=flags)


def _status(p: PlannerProcess) -> dict:
    r = httpx.get(p.url + "/v1/status", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_standby_shows_kubectl_changes_and_writes_nothing(cluster, kubectl, namespace, standin, prometheus,
                                                              tmp_path):
    kubectl.apply(DGD, namespace)
    kubectl.apply([adapter("llama", "prefill", 1), adapter("llama", "decode", 2)], namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state")
             == "successful", what="DGD ready")
    idle = IdleDeployment(prometheus, tmp_path / "exporters", namespace)
    leader = _planner(cluster, namespace, prometheus, tmp_path / "a").start(timeout=90)
    standby = None
    frozen = False
    try:
        wait_for(lambda: _status(leader)["leader"], timeout=TAKEOVER_S, what="the first planner leads")
        standby = _planner(cluster, namespace, prometheus, tmp_path / "b").start(timeout=90)
        wait_for(lambda: _status(standby)["leader_election"]["holder"], timeout=30, what="the standby sees the holder")
        assert _status(standby)["leader"] is False

        # the leader frozen (it keeps the lease): whatever is written from now on, the standby wrote
        leader.proc.send_signal(signal.SIGSTOP)
        frozen = True
        # a REST pin set on the standby (its one deliberate write), expiring in a few seconds
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
        r = httpx.put(standby.url + "/v1/overrides/prefill", headers=AUTH, timeout=10,
                      json={"replicas": 2, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert r.status_code == 200, r.text
        events = _planner_events(kubectl, namespace)

        # kubectl pins decode and changes the SLA: the standby's status shows both within intervals
        pin = [{"pool": "decode", "replicas": 4, "reason": "kubectl"}]
        _kubectl_apply(kubectl, namespace, {"sla": {"ttftMs": 400, "itlMs": 50}, "pins": pin})
        wait_for(lambda: (s := _status(standby))["sla"]["ttft_ms"] == 400
                 and s["overrides"].get("decode", {}).get("replicas") == 4,
                 timeout=15 * INTERVAL_S, what="the standby shows kubectl's pin and SLA")

        # once the REST pin expired, a change made after that shows: the standby re-read the policy
        # since, and a refresh that removes expired REST pins would have removed it then
        wait_for(lambda: dt.datetime.now(dt.UTC) > expires, timeout=10, what="the REST pin expires")
        _kubectl_apply(kubectl, namespace, {"sla": {"ttftMs": 400, "itlMs": 40}, "pins": pin})
        written = _policy(kubectl, namespace)
        wait_for(lambda: _status(standby)["sla"]["itl_ms"] == 40, timeout=15 * INTERVAL_S,
                 what="the standby shows the later SLA")
        assert "prefill" not in _status(standby)["overrides"]  # expired: not shown
        now = _policy(kubectl, namespace)
        assert now["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
        assert now["metadata"]["managedFields"] == written["metadata"]["managedFields"]
        assert _pins(kubectl, namespace) == {"decode": 4, "prefill": 2}  # left for the leader
        assert _planner_events(kubectl, namespace) == events
        assert metric(standby.url, "dynamo_planner_decisions_total") == 0

        # the leader, running again, takes the same spec: kubectl's pin written to the adapter
        leader.proc.send_signal(signal.SIGCONT)
        frozen = False
        wait_for(lambda: kubectl.json("-n", namespace, "get", "dgdsa", "llama-decode")["spec"]["replicas"] == 4,
                 timeout=30, what="the leader applies kubectl's pin")
        assert _status(leader)["leader"] and _status(leader)["sla"]["itl_ms"] == 40
        # and, leading, it removes the expired pin that only REST owned
        wait_for(lambda: _pins(kubectl, namespace) == {"decode": 4}, timeout=30,
                 what="the leader removes the expired REST pin")
    finally:
        if frozen:
            leader.proc.send_signal(signal.SIGCONT)
        leader.stop()
        if standby is not None:
            standby.stop()
        idle.stop()
