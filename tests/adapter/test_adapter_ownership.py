"""One adapter per DGD service, against the real control plane and the real adapter process:
a second adapter for the same service, an adapter whose name belongs to another service, and an
adapter for a service without `scalingAdapter.enabled` are reported and never write the DGD."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
from adapter_process import holds_for
from helpers import wait_for
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.cluster


def dgd(frontend_flag: bool = False) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"services": {
                "Frontend": {"componentType": "frontend", "replicas": 1,
                             "scalingAdapter": {"enabled": frontend_flag}},
                "prefill": {"componentType": "worker", "replicas": 1, "scalingAdapter": {"enabled": True}},
                "VllmDecodeWorker": {"componentType": "worker", "replicas": 1, "scalingAdapter": {"enabled": True}},
            }}}


def adapter_body(name: str, service: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "dgdRef": {"name": "llama", "serviceName": service}}}


def get(kubectl, ns: str, name: str) -> dict | None:
    r = kubectl.run("-n", ns, "get", "dgdsa", name, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def cond(obj: dict | None, ctype: str) -> dict:
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def replicas(kubectl, ns: str) -> dict[str, int | None]:
    return {s: v.get("replicas") for s, v in kubectl.json("-n", ns, "get", "dgd", "llama")["spec"]["services"].items()}


def generation(kubectl, ns: str) -> int:
    return kubectl.json("-n", ns, "get", "dgd", "llama")["metadata"]["generation"]


def warnings(kubectl, ns: str, adapter: str, reason: str) -> list[str]:
    return [e["message"] for e in kubectl.json("-n", ns, "get", "events")["items"]
            if e["involvedObject"]["name"] == adapter and e["reason"] == reason and e["type"] == "Warning"]


def owns_gauge(adapter, ns: str, name: str) -> float | None:
    """dynamo_adapter_owns_service of one adapter, read from the adapter's metrics endpoint."""
    text = httpx.get(f"http://127.0.0.1:{adapter.metrics}/metrics", timeout=5).text
    return next((s.value for f in text_string_to_metric_families(text) if f.name == "dynamo_adapter_owns_service"
                 for s in f.samples if s.labels == {"namespace": ns, "adapter": name}), None)


def refused(kubectl, ns: str, name: str, reason: str) -> dict:
    """Wait until the adapter reports `reason` on Ready and Synced; return it."""
    return wait_for(lambda: (a := get(kubectl, ns, name)) and cond(a, "Ready").get("reason") == reason
                    and cond(a, "Synced").get("reason") == reason and a, what=f"{name} Ready=False {reason}")


def settled(kubectl, ns: str, name: str, want: int) -> None:
    wait_for(lambda: (a := get(kubectl, ns, name)) and a.get("status", {}).get("replicas") == want
             and cond(a, "Synced").get("status") == "True", what=f"{name} synced at {want}")


def test_second_adapter_for_a_service_is_refused(kubectl, namespace, adapter):
    kubectl.apply(dgd(), namespace)
    settled(kubectl, namespace, "llama-vllmdecodeworker", 1)
    gen = generation(kubectl, namespace)
    kubectl.apply(adapter_body("decode-extra", "VllmDecodeWorker", 3), namespace)
    # the watch sees the new adapter at once; two resyncs cover reconciles driven by re-lists
    holds_for(lambda: generation(kubectl, namespace) == gen, 2 * adapter.resync_period,
              what="no write to the DGD")
    a = refused(kubectl, namespace, "decode-extra", "DuplicateAdapter")
    assert cond(a, "Ready")["status"] == "False" and "llama-vllmdecodeworker" in cond(a, "Ready")["message"]
    assert cond(a, "ScalingActive")["status"] == "False"
    msgs = wait_for(lambda: warnings(kubectl, namespace, "decode-extra", "DuplicateAdapter"), what="event")
    assert "llama-vllmdecodeworker" in msgs[0]
    wait_for(lambda: owns_gauge(adapter, namespace, "decode-extra") == 0.0, what="gauge 0 for the duplicate")
    wait_for(lambda: owns_gauge(adapter, namespace, "llama-vllmdecodeworker") == 1.0, what="gauge 1 for the owner")
    # the owner still scales; the duplicate's status follows the service without writing it
    kubectl("-n", namespace, "scale", "dgdsa", "llama-vllmdecodeworker", "--replicas=2")
    wait_for(lambda: replicas(kubectl, namespace)["VllmDecodeWorker"] == 2, what="owner scales")
    gen = generation(kubectl, namespace)
    holds_for(lambda: generation(kubectl, namespace) == gen and replicas(kubectl, namespace)["VllmDecodeWorker"] == 2,
              2 * adapter.resync_period, what="DGD stays at the owner's 2")
    assert get(kubectl, namespace, "decode-extra")["spec"]["replicas"] == 3
    # once the owner is gone, the remaining adapter is adopted rather than a new one created beside it
    kubectl("-n", namespace, "delete", "dgdsa", "llama-vllmdecodeworker")
    wait_for(lambda: replicas(kubectl, namespace)["VllmDecodeWorker"] == 3, what="the remaining adapter takes over")
    settled(kubectl, namespace, "decode-extra", 3)
    holds_for(lambda: get(kubectl, namespace, "llama-vllmdecodeworker") is None, 2 * adapter.resync_period,
              what="no second adapter created")


def test_oldest_adapter_made_before_the_dgd_is_adopted(kubectl, namespace, adapter):
    kubectl.apply(adapter_body("zz-old", "VllmDecodeWorker", 2), namespace)
    old = get(kubectl, namespace, "zz-old")["metadata"]["creationTimestamp"]
    # creationTimestamp has one-second resolution: the second adapter must be visibly younger
    wait_for(lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > old, what="next second")
    kubectl.apply(adapter_body("aa-new", "VllmDecodeWorker", 3), namespace)
    assert get(kubectl, namespace, "aa-new")["metadata"]["creationTimestamp"] > old
    kubectl.apply(dgd(), namespace)
    wait_for(lambda: replicas(kubectl, namespace)["VllmDecodeWorker"] == 2, what="DGD follows the oldest adapter")
    uid = kubectl.json("-n", namespace, "get", "dgd", "llama")["metadata"]["uid"]
    wait_for(lambda: any(r["uid"] == uid for r in get(kubectl, namespace, "zz-old")["metadata"].get("ownerReferences", [])),
             what="oldest adapter adopted by the DGD")
    a = refused(kubectl, namespace, "aa-new", "DuplicateAdapter")
    assert "zz-old" in cond(a, "Ready")["message"]
    settled(kubectl, namespace, "llama-prefill", 1)  # the other flagged service got its own adapter
    gen = generation(kubectl, namespace)
    holds_for(lambda: generation(kubectl, namespace) == gen and get(kubectl, namespace, "llama-vllmdecodeworker") is None,
              2 * adapter.resync_period, what="no write to the DGD and no second adapter created")


def test_adapter_named_for_another_service_is_refused(kubectl, namespace, adapter):
    # made before the DGD, it takes the name the adapter of `prefill` would get
    kubectl.apply(adapter_body("llama-prefill", "VllmDecodeWorker", 3), namespace)
    # it has reported once (status.replicas 0), as an adapter left from before the DGD would have
    refused(kubectl, namespace, "llama-prefill", "DGDNotFound")
    kubectl.apply(dgd(), namespace)
    settled(kubectl, namespace, "llama-vllmdecodeworker", 1)
    a = refused(kubectl, namespace, "llama-prefill", "ServiceMismatch")
    assert "prefill" in cond(a, "Ready")["message"] and "VllmDecodeWorker" in cond(a, "Ready")["message"]
    assert wait_for(lambda: warnings(kubectl, namespace, "llama-prefill", "ServiceMismatch"), what="event")
    gen = generation(kubectl, namespace)
    holds_for(lambda: generation(kubectl, namespace) == gen and
              replicas(kubectl, namespace) == {"Frontend": 1, "prefill": 1, "VllmDecodeWorker": 1},
              2 * adapter.resync_period, what="neither service driven by the misnamed adapter")
    uid = kubectl.json("-n", namespace, "get", "dgd", "llama")["metadata"]["uid"]
    assert not any(r["uid"] == uid for r in get(kubectl, namespace, "llama-prefill")["metadata"].get("ownerReferences", []))


def test_adapter_for_a_service_without_the_flag_is_refused_until_enabled(kubectl, namespace, adapter):
    kubectl.apply(dgd(frontend_flag=False), namespace)
    settled(kubectl, namespace, "llama-prefill", 1)
    gen = generation(kubectl, namespace)
    kubectl.apply(adapter_body("front", "Frontend", 3), namespace)
    holds_for(lambda: generation(kubectl, namespace) == gen, 2 * adapter.resync_period, what="no write to the DGD")
    a = refused(kubectl, namespace, "front", "AdapterNotEnabled")
    assert "scalingAdapter.enabled" in cond(a, "Ready")["message"]
    assert wait_for(lambda: warnings(kubectl, namespace, "front", "AdapterNotEnabled"), what="event")
    # enabling the flag adopts the existing adapter instead of creating llama-frontend beside it
    kubectl("-n", namespace, "patch", "dgd", "llama", "--type=merge",
            "-p", json.dumps({"spec": {"services": {"Frontend": {"scalingAdapter": {"enabled": True}}}}}))
    wait_for(lambda: replicas(kubectl, namespace)["Frontend"] == 3, what="DGD follows the adopted adapter")
    settled(kubectl, namespace, "front", 3)
    assert get(kubectl, namespace, "llama-frontend") is None
