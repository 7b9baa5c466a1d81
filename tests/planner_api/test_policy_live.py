"""The DynamoScalingPolicy on the real control plane, with real kubectl and a real planner
process: kubectl and REST write the same resource, the API server refuses bad specs naming the
field, the old ConfigMap is migrated, and the planner reports its decisions in the status."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import yaml
from helpers import wait_for
from planner_support import AUTH, DGD, IdleDeployment, start_planner, stop

from devcluster.kubectl import KubectlError
from scaler.control.policy import MIGRATED, REST_MANAGER

pytestmark = pytest.mark.cluster


def _adapter(svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"llama-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": "llama", "serviceName": svc}}}


def _policy(**spec) -> dict:
    return {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
            "metadata": {"name": "llama"},
            "spec": {"dgdRef": {"name": "llama"}, "sla": {"ttftMs": 500, "itlMs": 50}, **spec}}


def _spec(kubectl, namespace: str, svc: str) -> int:
    return kubectl.json("-n", namespace, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]


def _dsp(kubectl, namespace: str) -> dict:
    return yaml.safe_load(kubectl("-n", namespace, "get", "dsp", "llama", "-o", "yaml", "--show-managed-fields"))


def _conditions(kubectl, namespace: str) -> dict[str, dict]:
    return {c["type"]: c for c in _dsp(kubectl, namespace).get("status", {}).get("conditions", [])}


def test_kubectl_and_rest_write_the_same_policy(cluster, kubectl, namespace, standin, prometheus, tmp_path):
    kubectl.apply(DGD, namespace)
    kubectl.apply([_adapter("prefill", 3), _adapter("decode", 2)], namespace)
    idle = IdleDeployment(prometheus, tmp_path / "exporters", namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state")
             == "successful", what="DGD ready")
    proc, url = start_planner(cluster.kubeconfig, namespace, tmp_path / "planner", prometheus.url)
    try:
        # neither a policy nor a ConfigMap: the planner creates the policy from its config
        created = _dsp(kubectl, namespace)
        assert created["spec"]["sla"] == {"ttftMs": 500, "itlMs": 50} and created["spec"]["mode"] == "active"

        # a pin applied with kubectl is honoured, and the REST API shows it
        kubectl.apply(_policy(pins=[{"pool": "decode", "replicas": 4, "reason": "launch day"}]), namespace)
        wait_for(lambda: _spec(kubectl, namespace, "decode") == 4, timeout=20, what="the kubectl pin written")
        st = httpx.get(url + "/v1/status", headers=AUTH).json()
        assert st["overrides"]["decode"]["replicas"] == 4 and st["overrides"]["decode"]["reason"] == "launch day"

        # a pin set through REST is in the same resource, owned by the REST field manager
        r = httpx.put(url + "/v1/overrides/prefill", json={"replicas": 2, "reason": "canary"}, headers=AUTH)
        assert r.status_code == 200, r.text
        dsp = _dsp(kubectl, namespace)
        assert {"pool": "prefill", "replicas": 2, "reason": "canary", "setBy": "static-token"} in \
            [{k: p[k] for k in ("pool", "replicas", "reason", "setBy") if k in p} for p in dsp["spec"]["pins"]]
        managers = {m["manager"]: m for m in dsp["metadata"]["managedFields"]}
        rest_pins = managers[REST_MANAGER]["fieldsV1"]["f:spec"]["f:pins"]
        assert list(rest_pins) == ['k:{"pool":"prefill"}']  # not the decode pin kubectl wrote
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 2, timeout=20, what="the REST pin written")

        # REST may not change or remove what kubectl owns: 409 naming the owner, nothing changed
        r = httpx.put(url + "/v1/overrides/decode", json={"replicas": 5}, headers=AUTH)
        assert r.status_code == 409 and "kubectl" in r.json()["error"], r.text
        r = httpx.delete(url + "/v1/overrides/decode", headers=AUTH)
        assert r.status_code == 409 and "kubectl" in r.json()["error"], r.text
        assert [p["replicas"] for p in _dsp(kubectl, namespace)["spec"]["pins"] if p["pool"] == "decode"] == [4]
        assert httpx.get(url + "/v1/status", headers=AUTH).json()["overrides"]["decode"]["replicas"] == 4

        # REST removes its own pin; a later kubectl apply keeps the other writer's fields
        assert httpx.delete(url + "/v1/overrides/prefill", headers=AUTH).status_code == 204
        assert [p["pool"] for p in _dsp(kubectl, namespace)["spec"]["pins"]] == ["decode"]

        # status: the last decision, the plan per pool, conditions, printer columns
        def observed() -> dict | None:
            dsp = _dsp(kubectl, namespace)
            return dsp if dsp.get("status", {}).get("observedGeneration") == dsp["metadata"]["generation"] else None

        dsp = wait_for(observed, timeout=20, what="the status of the latest generation")
        assert _conditions(kubectl, namespace)["Planning"]["reason"] == "Active"
        assert dsp["status"]["plan"]["decode"] == 4 and dsp["status"]["roles"]["decode"]["desired"] == 4
        assert dsp["status"]["lastDecision"]["outcome"] == "planned" and "forecast_rate" in dsp["status"]["forecast"]
        conds = _conditions(kubectl, namespace)
        assert conds["HeldOnMissingData"]["status"] == "False" and conds["ConflictingScaler"]["status"] == "False"
        assert conds["BudgetLimited"]["status"] == "False"
        header, row = kubectl("-n", namespace, "get", "dsp").strip().splitlines()
        assert header.split()[:7] == ["NAME", "DGD", "ATTAINMENT", "TTFT", "ITL", "MODE", "PREFILL"]
        assert row.split()[:6] == ["llama", "llama", "0.99", "500", "50", "active"]

        # paused through kubectl: the condition says so and REST reads it
        kubectl.apply(_policy(mode="paused", pins=[{"pool": "decode", "replicas": 4, "reason": "launch day"}]),
                      namespace)
        wait_for(lambda: _conditions(kubectl, namespace).get("Planning", {}).get("reason") == "Paused",
                 timeout=20, what="Planning=False/Paused")
        assert httpx.get(url + "/v1/status", headers=AUTH).json()["paused"] is True
    finally:
        stop(proc)
        idle.stop()


@pytest.mark.parametrize(("spec", "field"), [
    ({"sla": {"ttftMs": 0, "itlMs": 50}}, "spec.sla.ttftMs"),
    ({"pools": [{"name": "decode", "minReplicas": 5, "maxReplicas": 2}]}, "spec.pools[0].minReplicas"),
    ({"pins": [{"pool": "decode", "replicas": 2, "expiresAt": "tomorrow"}]}, "spec.pins[0].expiresAt"),
    ({"pins": [{"pool": "decode", "replicas": -1}]}, "spec.pins[0].replicas"),
    ({"mode": "sometimes"}, "spec.mode"),
    ({"attainmentTarget": 1.5}, "spec.attainmentTarget"),
])
def test_bad_policies_are_refused_naming_the_field(kubectl, namespace, spec, field):
    with pytest.raises(KubectlError) as err:
        kubectl.apply(_policy(**spec), namespace)
    assert field in err.value.stderr
    assert "llama" not in kubectl("-n", namespace, "get", "dsp", "-o", "name")


def test_the_old_configmap_is_migrated_once(cluster, kubectl, namespace, prometheus, tmp_path):
    old = {"sla": {"ttft_ms": 300, "itl_ms": 25}, "paused": False, "advisory": True,
           "overrides": {"decode": {"replicas": 3, "reason": "from the ConfigMap", "set_by": "alice"},
                         "prefill": {"min_replicas": 1, "max_replicas": 4}}}
    kubectl("-n", namespace, "create", "configmap", "llama-planner-state",
            f"--from-literal=control.json={json.dumps(old)}")
    proc, url = start_planner(cluster.kubeconfig, namespace, tmp_path / "planner", prometheus.url)
    try:
        spec = _dsp(kubectl, namespace)["spec"]
        assert spec["sla"] == {"ttftMs": 300, "itlMs": 25} and spec["mode"] == "advisory"
        assert spec["pins"] == [{"pool": "decode", "replicas": 3, "reason": "from the ConfigMap", "setBy": "alice"}]
        assert spec["pools"] == [{"name": "prefill", "minReplicas": 1, "maxReplicas": 4}]
        cm = kubectl.json("-n", namespace, "get", "configmap", "llama-planner-state")
        assert cm["metadata"]["annotations"][MIGRATED] == "DynamoScalingPolicy/llama"
        assert httpx.get(url + "/v1/status", headers=AUTH).json()["overrides"]["decode"]["replicas"] == 3
    finally:
        stop(proc)
    # once: a deleted policy is not re-created from the migrated ConfigMap
    kubectl("-n", namespace, "delete", "dsp", "llama")
    proc, url = start_planner(cluster.kubeconfig, namespace, tmp_path / "planner2", prometheus.url)
    try:
        spec = _dsp(kubectl, namespace)["spec"]
        assert spec["mode"] == "active" and "pins" not in spec and spec["sla"] == {"ttftMs": 500, "itlMs": 50}
    finally:
        stop(proc)


def test_expired_pins_leave_the_effective_state_and_rest_ones_the_spec(cluster, kubectl, namespace, prometheus,
                                                                        tmp_path):
    past = "2020-01-01T00:00:00Z"
    kubectl.apply(_policy(pins=[{"pool": "decode", "replicas": 4, "expiresAt": past}]), namespace)
    proc, url = start_planner(cluster.kubeconfig, namespace, tmp_path / "planner", prometheus.url)
    try:
        # kubectl's expired pin: ignored by the planner, left in the spec (Git would put it back)
        assert "decode" not in httpx.get(url + "/v1/status", headers=AUTH).json()["overrides"]
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = httpx.put(url + "/v1/overrides/prefill", json={"replicas": 2, "expires_at": soon}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert [p["pool"] for p in _dsp(kubectl, namespace)["spec"]["pins"]] == ["decode", "prefill"]
        # REST's own pin, once expired, is removed from the spec by the planner
        wait_for(lambda: [p["pool"] for p in _dsp(kubectl, namespace)["spec"]["pins"]] == ["decode"], timeout=20,
                 what="the expired REST pin removed")
        assert httpx.get(url + "/v1/status", headers=AUTH).json()["overrides"] == {}
    finally:
        stop(proc)


def test_status_writes_are_throttled_and_use_the_resource_version(kube_api, kubectl, namespace):
    from scaler.control.policy import PolicyStore
    from scaler.control.state import ControlState, SLATargets

    store = PolicyStore(kube_api, namespace, "llama", status_every_s=3600)
    state = store.load(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50)))
    cond = [("Planning", True, "Active", "planning")]
    decided = {"plan": {"decode": 2}, "forecast": {"rate": 1.0}, "lastDecision": {"time": "2026-12-01T00:00:00Z"}}
    assert store.write_status(decided, cond)
    # same plan and conditions, new forecast numbers and decision time: not written again
    later = {**decided, "forecast": {"rate": 2.0}, "lastDecision": {"time": "2026-12-01T00:00:10Z"}}
    assert not store.write_status(later, cond)
    assert _dsp(kubectl, namespace)["status"]["forecast"] == {"rate": 1.0}
    # a change is written at once, on top of a spec someone changed since (a fresh resourceVersion)
    kubectl.apply(_policy(mode="paused"), namespace)
    assert store.write_status({**later, "plan": {"decode": 3}}, [("Planning", False, "Paused", "paused")])
    status = _dsp(kubectl, namespace)["status"]
    assert status["plan"] == {"decode": 3} and status["conditions"][0]["reason"] == "Paused"
    # the status says which generation the planner acted on: not the new one until it read it
    assert status["observedGeneration"] == 1 < _dsp(kubectl, namespace)["metadata"]["generation"]
    store.refresh(state)
    assert state.paused and store.write_status({**later, "plan": {"decode": 3}}, [("Planning", False, "Paused", "")])
    assert _dsp(kubectl, namespace)["status"]["observedGeneration"] == 2
