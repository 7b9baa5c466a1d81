"""The pieces of planner leader election against the real API server: the election flags, who
may write, a /scale write that raced a change of leader, and the state ConfigMap two replicas
share."""

from __future__ import annotations

import json
import os

import pytest

from adapter.scale_client import ScaleClient, ScaleConflict
from dynamo_scaling.cli import build_parser
from scaler.control.auth import Caller
from scaler.control.state import ControlState, Override, SLATargets
from scaler.control.store import KEY, ConfigMapStore
from scaler.service.cli import settings_from_args
from scaler.service.leadership import GuardedScaleClient, Leadership, NotLeader, SharedConfigMap

SLA = SLATargets(ttft_ms=200, itl_ms=20)


def planner_settings(*argv: str):
    return settings_from_args(build_parser().parse_args(["planner", "--config", "p.yaml", *argv]))


@pytest.fixture()
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith("DYNAMO_PLANNER_"):
            monkeypatch.delenv(k)


def test_election_flags_defaults_env_and_bad_periods(clean_env, monkeypatch):
    s = planner_settings()
    assert (s.leader_election, s.leader_election_lease, s.leader_election_namespace) == (
        False, "dynamo-scaling-planner", "default")
    assert (s.leader_election_lease_duration, s.leader_election_renew_deadline, s.leader_election_retry_period) == (
        15.0, 10.0, 2.0)
    monkeypatch.setenv("DYNAMO_PLANNER_LEADER_ELECTION", "true")
    monkeypatch.setenv("DYNAMO_PLANNER_LEADER_ELECTION_LEASE_DURATION", "6")
    s = planner_settings("--leader-election-namespace", "ops", "--leader-election-renew-deadline", "4",
                         "--leader-election-retry-period", "1")
    assert (s.leader_election, s.leader_election_namespace, s.leader_election_lease_duration,
            s.leader_election_renew_deadline, s.leader_election_retry_period) == (True, "ops", 6.0, 4.0, 1.0)

    # a renew deadline at or past the lease would let the old leader write beside the new one
    with pytest.raises(ValueError) as err:
        planner_settings("--leader-election-renew-deadline", "6")
    msg = str(err.value)
    for flag in ("--leader-election-retry-period", "--leader-election-renew-deadline",
                 "--leader-election-lease-duration"):
        assert flag in msg
    with pytest.raises(ValueError, match="--leader-election-retry-period"):
        planner_settings("--leader-election-retry-period", "5")
    with pytest.raises(ValueError, match="DYNAMO_PLANNER_LEADER_ELECTION_LEASE_DURATION"):
        monkeypatch.setenv("DYNAMO_PLANNER_LEADER_ELECTION_LEASE_DURATION", "-1")
        planner_settings()


def _adapter(kubectl, ns: str, name: str, replicas: int) -> None:
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                   "metadata": {"name": name},
                   "spec": {"replicas": replicas, "dgdRef": {"name": "llama", "serviceName": "prefill"}}}, ns)


def _replicas(kubectl, ns: str, name: str) -> int:
    return kubectl.json("-n", ns, "get", "dgdsa", name)["spec"]["replicas"]


def _pair(kube_api, ns: str) -> tuple[Leadership, Leadership]:
    a = Leadership.elect(kube_api, ns, "planner", lease_s=30, renew_deadline_s=20, retry_s=1, identity="a")
    b = Leadership.elect(kube_api, ns, "planner", lease_s=30, renew_deadline_s=20, retry_s=1, identity="b")
    assert a.elector.try_acquire() and not b.elector.try_acquire()
    return a, b


def test_only_the_lease_holder_writes_and_reports_the_holder(kube_api, kubectl, namespace):
    _adapter(kubectl, namespace, "llama-prefill", 2)
    leader, standby = _pair(kube_api, namespace)
    assert leader.status() == {"leader": True, "leader_election": {"identity": "a", "holder": "a",
                                                                   "lease": f"{namespace}/planner"}}
    assert standby.status()["leader"] is False and standby.status()["leader_election"]["holder"] == "a"
    assert Leadership().status() == {"leader": True, "leader_election": None} and Leadership().guard() is None

    mine = GuardedScaleClient(kube_api, namespace, leader.guard)
    theirs = GuardedScaleClient(kube_api, namespace, standby.guard)
    mine.get("llama-prefill"), theirs.get("llama-prefill")
    with pytest.raises(NotLeader):
        theirs.set("llama-prefill", 5)
    assert _replicas(kubectl, namespace, "llama-prefill") == 2
    assert mine.set("llama-prefill", 3).spec_replicas == 3
    assert _replicas(kubectl, namespace, "llama-prefill") == 3

    # the holder lets go (its lease expired on its own clock): it stops writing at once
    leader.elector._renewed_at -= leader.elector.renew_deadline_s
    assert not leader.is_leader()
    mine.get("llama-prefill")
    with pytest.raises(NotLeader):
        mine.set("llama-prefill", 4)
    assert _replicas(kubectl, namespace, "llama-prefill") == 3


def test_a_write_on_replicas_changed_since_read_is_dropped(kube_api, kubectl, namespace):
    """The old leader read 2 replicas and decided 3; the new one wrote 3 meanwhile: the old
    leader's write fails rather than applying a decision taken on what is gone."""
    _adapter(kubectl, namespace, "llama-prefill", 2)
    leader, _ = _pair(kube_api, namespace)
    old = GuardedScaleClient(kube_api, namespace, leader.guard)
    assert old.get("llama-prefill").spec_replicas == 2
    ScaleClient(kube_api, namespace, field_manager="other-replica").set("llama-prefill", 3)
    with pytest.raises(ScaleConflict, match="from 2 to 3"):
        old.set("llama-prefill", 4)
    assert _replicas(kubectl, namespace, "llama-prefill") == 3

    # a status update in between changes the resourceVersion, not the replicas: the write goes on
    old.get("llama-prefill")
    kubectl("-n", namespace, "patch", "dgdsa", "llama-prefill", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"replicas": 3, "selector": "x=y"}}))
    assert old.set("llama-prefill", 4).spec_replicas == 4
    assert _replicas(kubectl, namespace, "llama-prefill") == 4


def test_shared_configmap_merges_changes_of_two_replicas(kube_api, namespace):
    store = ConfigMapStore(kube_api, namespace, "planner-state")
    one, two = SharedConfigMap(store, SLA), SharedConfigMap(store, SLA)
    s1, s2 = ControlState(sla=SLA), ControlState(sla=SLA)  # both replicas started from nothing

    def change(shared: SharedConfigMap, state: ControlState, fn) -> None:
        before = ControlState.from_persisted(state.to_persisted(), state.sla)
        fn(state)
        stored = shared.save_change(before, state, Caller("x"))
        state.sla, state.paused, state.overrides = stored.sla, stored.paused, stored.overrides

    change(one, s1, lambda st: st.overrides.__setitem__("prefill", Override(replicas=4, reason="r")))
    # the other replica never saw the override; its pause must not write it away
    change(two, s2, lambda st: setattr(st, "paused", True))
    saved = json.loads(store.raw().data[KEY])
    assert saved["paused"] is True and saved["overrides"]["prefill"]["replicas"] == 4
    assert s2.overrides["prefill"].replicas == 4

    # the leader re-reads what a standby changed
    one.refresh(s1)
    assert s1.paused is True
    change(one, s1, lambda st: st.overrides.pop("prefill"))
    two.refresh(s2)
    assert "prefill" not in s2.overrides and s2.paused is True
