"""The DGDSA controller against the real control plane, driven by the real kubectl. The DGDSA
contract tests run against v1alpha1 and v1beta1 objects: for v1beta1 both CRDs serve it through
the adapter's conversion webhook (tests/adapter/conftest.py)."""

from __future__ import annotations

import json
import threading

import pytest
from adapter_process import holds_for
from helpers import wait_for

from adapter import versions

pytestmark = pytest.mark.cluster

BOTH = pytest.mark.parametrize("version", [versions.V1ALPHA1, versions.V1BETA1])


def dgd(replicas_decode: int = 1, adapters: bool = True, extra: dict | None = None,
        version: str = versions.V1ALPHA1) -> dict:
    services = {
        "Frontend": {"componentType": "frontend", "replicas": 1},
        "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 1,
                    "scalingAdapter": {"enabled": adapters}},
        "VllmDecodeWorker": {"componentType": "worker", "subComponentType": "decode", "replicas": replicas_decode,
                             "scalingAdapter": {"enabled": adapters}},
    }
    services.update(extra or {})
    body = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"services": services}}
    if version == versions.V1BETA1:
        body = {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
                "spec": {"components": [
                    {"name": "Frontend", "type": "frontend", "replicas": 1},
                    {"name": "prefill", "type": "worker", "subComponentType": "prefill", "replicas": 1,
                     **({"scalingAdapter": {}} if adapters else {})},
                    {"name": "VllmDecodeWorker", "type": "worker", "subComponentType": "decode",
                     "replicas": replicas_decode, **({"scalingAdapter": {}} if adapters else {})}]}}
        assert not extra, "extra services are v1alpha1-only here"
    return body


def dgd_resource(version: str) -> str:
    return f"dynamographdeployments.{version}.nvidia.com"


def dgdsa_resource(version: str) -> str:
    return f"dynamographdeploymentscalingadapters.{version}.nvidia.com"


def svc_replicas(kubectl, ns: str, svc: str, version: str = versions.V1ALPHA1) -> int | None:
    d = kubectl.json("-n", ns, "get", dgd_resource(version), "llama")
    if version == versions.V1ALPHA1:
        return d["spec"]["services"][svc].get("replicas")
    return next(c for c in d["spec"]["components"] if c["name"] == svc).get("replicas")


def component_path(kubectl, ns: str, svc: str, version: str) -> str:
    """JSON-pointer of a service (v1alpha1) or component (v1beta1) of the DGD `llama`."""
    if version == versions.V1ALPHA1:
        return f"/spec/services/{svc}"
    comps = kubectl.json("-n", ns, "get", dgd_resource(version), "llama")["spec"]["components"]
    return f"/spec/components/{next(i for i, c in enumerate(comps) if c['name'] == svc)}"


def get_adapter(kubectl, ns: str, name: str, version: str = versions.V1ALPHA1) -> dict:
    return kubectl.json("-n", ns, "get", dgdsa_resource(version), name)


def cond(obj: dict, ctype: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def events(kubectl, ns: str) -> list[dict]:
    return kubectl.json("-n", ns, "get", "events")["items"]


@pytest.fixture()
def contract_adapter(request, version):
    """The adapter for `version`: plain for v1alpha1; for v1beta1 with its conversion webhook
    and both CRDs serving v1beta1 (restored afterwards)."""
    return request.getfixturevalue("adapter" if version == versions.V1ALPHA1 else "converting_adapter")


@BOTH
def test_adapters_created_seeded_and_owned(kubectl, namespace, contract_adapter, version):
    kubectl.apply(dgd(replicas_decode=2, version=version), namespace)
    want = ["dynamographdeploymentscalingadapter.nvidia.com/llama-prefill",
            "dynamographdeploymentscalingadapter.nvidia.com/llama-vllmdecodeworker"]

    def listed() -> list[str] | None:
        names = sorted(kubectl("-n", namespace, "get", dgdsa_resource(version), "-o", "name").split())
        return names if len(names) >= len(want) else None  # created one after the other: wait for both

    assert wait_for(listed, what="both adapters created") == want
    a = get_adapter(kubectl, namespace, "llama-vllmdecodeworker", version)
    ref_key = "serviceName" if version == versions.V1ALPHA1 else "componentName"
    assert a["spec"] == {"replicas": 2, "dgdRef": {"name": "llama", ref_key: "VllmDecodeWorker"}}
    assert a["metadata"]["ownerReferences"][0]["kind"] == "DynamoGraphDeployment"
    st = wait_for(lambda: get_adapter(kubectl, namespace, "llama-vllmdecodeworker", version).get("status", {})
                  .get("selector"), what="status.selector")
    assert st == "nvidia.com/dynamo-graph-deployment-name=llama,nvidia.com/dynamo-component=VllmDecodeWorker"
    # turning the flag off removes the adapter; a later DGD replica change is not pulled back in
    prefill = component_path(kubectl, namespace, "prefill", version)
    off = ({"op": "replace", "path": f"{prefill}/scalingAdapter/enabled", "value": False}
           if version == versions.V1ALPHA1 else {"op": "remove", "path": f"{prefill}/scalingAdapter"})
    kubectl("-n", namespace, "patch", dgd_resource(version), "llama", "--type=json", "-p", json.dumps([off]))
    wait_for(lambda: "llama-prefill" not in kubectl("-n", namespace, "get", "dgdsa", "-o", "name"),
             what="adapter removed when the flag is off")
    kubectl("-n", namespace, "patch", dgd_resource(version), "llama", "--type=json", "-p", json.dumps([
        {"op": "replace", "path": f"{prefill}/replicas", "value": 4}]))
    # the watch sees the edit at once; two resyncs cover a controller that would act on re-list only
    holds_for(lambda: not adapter_exists(kubectl, namespace, "llama-prefill") and
              svc_replicas(kubectl, namespace, "prefill", version) == 4,
              2 * contract_adapter.resync_period, what="no adapter re-created and the DGD keeps 4 replicas")


@BOTH
def test_kubectl_scale_reaches_dgd_and_pods(kubectl, namespace, contract_adapter, standin, version):
    kubectl.apply(dgd(version=version), namespace)
    wait_for(lambda: adapter_exists(kubectl, namespace, "llama-vllmdecodeworker"), what="adapter")
    kubectl("-n", namespace, "scale", dgdsa_resource(version), "llama-vllmdecodeworker", "--replicas=4")
    # latency is measured by benchmarks/adapter_latency.py, not asserted here
    wait_for(lambda: svc_replicas(kubectl, namespace, "VllmDecodeWorker", version) == 4, what="DGD service at 4")
    out = wait_for(lambda: (o := kubectl("-n", namespace, "get", dgdsa_resource(version), "llama-vllmdecodeworker"))
                   and o.splitlines()[1].split()[3] == "4" and o, what="kubectl get shows 4")
    assert "VllmDecodeWorker" in out
    assert out.split()[2] == ("SERVICE" if version == versions.V1ALPHA1 else "COMPONENT")
    sel = get_adapter(kubectl, namespace, "llama-vllmdecodeworker", version)["status"]["selector"]
    wait_for(lambda: len([p for p in kubectl.json("-n", namespace, "get", "pods", "-l", sel)["items"]
                          if any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in p.get("status", {}).get("conditions", []))]) == 4,
             what="4 ready pods matching the selector")
    a = wait_for(lambda: (x := get_adapter(kubectl, namespace, "llama-vllmdecodeworker", version)) and
                 cond(x, "Ready").get("status") == "True" and x, what="adapter Ready")
    assert a["status"]["replicas"] == 4 and a["status"]["readyReplicas"] == 4 and a["status"]["lastScaleTime"]
    assert any(e["reason"] == "Scaled" for e in events(kubectl, namespace))


def adapter_exists(kubectl, ns: str, name: str) -> bool:
    return kubectl.run("-n", ns, "get", "dgdsa", name, check=False).returncode == 0


@BOTH
def test_direct_dgd_edit_is_reverted_and_settles(kubectl, namespace, contract_adapter, version):
    kubectl.apply(dgd(version=version), namespace)
    wait_for(lambda: get_adapter(kubectl, namespace, "llama-vllmdecodeworker", version).get("status", {})
             .get("replicas") == 1 if adapter_exists(kubectl, namespace, "llama-vllmdecodeworker") else False,
             what="synced")
    decode = component_path(kubectl, namespace, "VllmDecodeWorker", version)
    kubectl("-n", namespace, "patch", dgd_resource(version), "llama", "--type=json",
            "-p", json.dumps([{"op": "replace", "path": f"{decode}/replicas", "value": 7}]))
    wait_for(lambda: svc_replicas(kubectl, namespace, "VllmDecodeWorker", version) == 1, what="edit reverted")
    gen = kubectl.json("-n", namespace, "get", "dgd", "llama")["metadata"]["generation"]
    # two resync periods: nothing may keep writing (no ping-pong)
    holds_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama")["metadata"]["generation"] == gen,
              2 * contract_adapter.resync_period, what="DGD generation unchanged")
    assert get_adapter(kubectl, namespace, "llama-vllmdecodeworker", version)["spec"]["replicas"] == 1
    assert any(e["reason"] == "DirectEditReverted" and e["type"] == "Warning" for e in events(kubectl, namespace))


def test_racing_writers_end_consistent(kubectl, namespace, adapter):
    kubectl.apply(dgd(), namespace)
    wait_for(lambda: adapter_exists(kubectl, namespace, "llama-vllmdecodeworker"), what="adapter")
    errors: list[str] = []

    def writer(k: int) -> None:
        for i in range(25):
            r = kubectl.run("-n", namespace, "scale", "dgdsa", "llama-vllmdecodeworker",
                            f"--replicas={1 + (k * 25 + i) % 9}", check=False)
            if r.returncode != 0:
                errors.append(r.stderr)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = get_adapter(kubectl, namespace, "llama-vllmdecodeworker")["spec"]["replicas"]
    wait_for(lambda: svc_replicas(kubectl, namespace, "VllmDecodeWorker") == final, timeout=20,
             what=f"DGD converges on {final}")
    wait_for(lambda: get_adapter(kubectl, namespace, "llama-vllmdecodeworker")["status"]["replicas"] == final,
             what="status follows")


def test_bad_references_report_and_recover(kubectl, namespace, adapter):
    body = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": "orphan"}, "spec": {"replicas": 3, "dgdRef": {"name": "later", "serviceName": "decode"}}}
    kubectl.apply(body, namespace)
    a = wait_for(lambda: (x := get_adapter(kubectl, namespace, "orphan")) and cond(x, "Synced").get("reason") == "DGDNotFound"
                 and x, what="DGDNotFound condition")
    assert cond(a, "Ready")["status"] == "False"
    later = dgd()
    later["metadata"]["name"] = "later"
    later["spec"]["services"] = {"prefill": {"replicas": 1}}
    kubectl.apply(later, namespace)
    wait_for(lambda: cond(get_adapter(kubectl, namespace, "orphan"), "Synced").get("reason") == "ServiceNotFound",
             what="ServiceNotFound condition")
    # the service exists but does not ask for an adapter: still refused
    kubectl("-n", namespace, "patch", "dgd", "later", "--type=merge",
            "-p", json.dumps({"spec": {"services": {"decode": {"replicas": 1}}}}))
    wait_for(lambda: cond(get_adapter(kubectl, namespace, "orphan"), "Synced").get("reason") == "AdapterNotEnabled",
             what="AdapterNotEnabled condition")
    assert kubectl.json("-n", namespace, "get", "dgd", "later")["spec"]["services"]["decode"]["replicas"] == 1
    kubectl("-n", namespace, "patch", "dgd", "later", "--type=merge",
            "-p", json.dumps({"spec": {"services": {"decode": {"scalingAdapter": {"enabled": True}}}}}))
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "later")["spec"]["services"]["decode"]["replicas"] == 3,
             what="recovered: DGD follows the adapter")
    reasons = {e["reason"] for e in events(kubectl, namespace)}
    assert {"DGDNotFound", "ServiceNotFound", "AdapterNotEnabled", "Scaled"} <= reasons


def test_multinode_scale_to_zero_needs_opt_in(kubectl, namespace, adapter):
    kubectl.apply(dgd(extra={"big": {"componentType": "worker", "replicas": 1, "multinode": {"nodeCount": 2},
                                     "scalingAdapter": {"enabled": True}}}), namespace)
    wait_for(lambda: adapter_exists(kubectl, namespace, "llama-big"), what="adapter")
    kubectl("-n", namespace, "scale", "dgdsa", "llama-big", "--replicas=0")
    a = wait_for(lambda: (x := get_adapter(kubectl, namespace, "llama-big")) and
                 cond(x, "Synced").get("reason") == "ScaleToZeroRefused" and x, what="refused")
    assert svc_replicas(kubectl, namespace, "big") == 1 and "allow-scale-to-zero" in cond(a, "Synced")["message"]
    kubectl("-n", namespace, "annotate", "dgdsa", "llama-big", "scaling.dynamo-scaling.io/allow-scale-to-zero=true")
    wait_for(lambda: svc_replicas(kubectl, namespace, "big") == 0, what="opted-in scale to zero")


def test_conflicting_scalers_are_reported(kubectl, namespace, adapter):
    kubectl.apply(dgd(), namespace)
    wait_for(lambda: adapter_exists(kubectl, namespace, "llama-prefill"), what="adapter")
    for n in ("a", "b"):
        kubectl.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": f"hpa-{n}"},
                       "spec": {"scaleTargetRef": {"apiVersion": "nvidia.com/v1alpha1",
                                                   "kind": "DynamoGraphDeploymentScalingAdapter", "name": "llama-prefill"},
                                "minReplicas": 1, "maxReplicas": 4,
                                "metrics": [{"type": "External", "external": {"metric": {"name": "dynamo_queue_depth"},
                                             "target": {"type": "AverageValue", "averageValue": "5"}}}]}}, namespace)
    a = wait_for(lambda: (x := get_adapter(kubectl, namespace, "llama-prefill")) and
                 cond(x, "ScalingActive").get("reason") == "ConflictingScalers" and x, what="conflict condition")
    assert "hpa-a" in cond(a, "ScalingActive")["message"] and "hpa-b" in cond(a, "ScalingActive")["message"]
    assert any(e["reason"] == "ConflictingScalers" for e in events(kubectl, namespace))
    kubectl("-n", namespace, "delete", "hpa", "hpa-b")
    wait_for(lambda: cond(get_adapter(kubectl, namespace, "llama-prefill"), "ScalingActive").get("reason")
             != "ConflictingScalers", what="conflict cleared")


def test_hpa_can_read_the_scale_subresource(kubectl, namespace, adapter, standin):
    kubectl.apply(dgd(), namespace)
    wait_for(lambda: get_adapter(kubectl, namespace, "llama-prefill").get("status", {}).get("selector")
             if adapter_exists(kubectl, namespace, "llama-prefill") else None, what="selector")
    kubectl.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "prefill"},
                   "spec": {"scaleTargetRef": {"apiVersion": "nvidia.com/v1alpha1",
                                               "kind": "DynamoGraphDeploymentScalingAdapter", "name": "llama-prefill"},
                            "minReplicas": 1, "maxReplicas": 4,
                            "metrics": [{"type": "External", "external": {"metric": {"name": "dynamo_queue_depth"},
                                         "target": {"type": "AverageValue", "averageValue": "5"}}}]}}, namespace)
    # the controller-manager learns about a CRD created after it started on its next discovery refresh
    hpa = wait_for(lambda: (h := kubectl.json("-n", namespace, "get", "hpa", "prefill")) and
                   any(c["type"] == "AbleToScale" and c["status"] == "True"
                       for c in h.get("status", {}).get("conditions", [])) and h,
                   timeout=120, interval=1, what="HPA AbleToScale=True")
    assert hpa["status"]["currentReplicas"] == 1


def test_restart_loses_no_update(kubectl, namespace, adapter):
    kubectl.apply(dgd(), namespace)
    wait_for(lambda: adapter_exists(kubectl, namespace, "llama-vllmdecodeworker"), what="adapter")
    adapter.kill()
    kubectl("-n", namespace, "scale", "dgdsa", "llama-vllmdecodeworker", "--replicas=5")
    kubectl("-n", namespace, "scale", "dgdsa", "llama-prefill", "--replicas=3")
    # nobody carries it while down (a running adapter would within one resync period)
    holds_for(lambda: svc_replicas(kubectl, namespace, "VllmDecodeWorker") == 1, adapter.resync_period,
              what="DGD untouched while the adapter is down")
    adapter.start()
    wait_for(lambda: svc_replicas(kubectl, namespace, "VllmDecodeWorker") == 5 and
             svc_replicas(kubectl, namespace, "prefill") == 3, what="updates made while down applied")
