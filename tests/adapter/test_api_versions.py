"""Both served API versions map to one internal model; conversion is lossless; writes and version
choice are pure functions (no cluster)."""

from __future__ import annotations

import pytest

from adapter import versions as v
from adapter.models import parse_dgd
from adapter.sync import AdapterInfo, plan_sync, wanted_adapters

ALPHA = {
    "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
    "metadata": {"name": "llama", "namespace": "ns", "uid": "u1"},
    "spec": {
        "backendFramework": "vllm", "someFutureField": {"x": 1},
        "services": {
            "Frontend": {"componentType": "frontend", "replicas": 1, "extraPodSpec": {"mainContainer": {"image": "f"}}},
            "decode": {"componentType": "decode", "replicas": 3, "scalingAdapter": {"enabled": True},
                       "multinode": {"nodeCount": 2}, "resources": {"limits": {"gpu": "4"}}},
            "Planner": {"componentType": "planner"},
        },
    },
    "status": {"state": "successful", "services": {"decode": {"readyReplicas": 3, "componentKind": "x"}}},
}

BETA = {
    "apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment",
    "metadata": {"name": "llama", "namespace": "ns", "uid": "u1"},
    "spec": {
        "backendFramework": "vllm",
        "components": [
            {"name": "decode", "type": "decode", "replicas": 3, "scalingAdapter": {}, "multinode": {"nodeCount": 2},
             "podTemplate": {"spec": {"containers": [{"name": "sidecar"}, {"name": "main", "image": "w",
                                                     "resources": {"limits": {"nvidia.com/gpu": "4"}}}]}}},
            {"name": "Frontend", "type": "frontend", "replicas": 1},
            {"name": "prefill", "type": "prefill", "replicas": 2},
            {"name": "Planner", "type": "planner"},
        ],
        "experimental": {"componentGroups": [
            {"name": "pd", "replicas": 2, "scalingAdapter": {}, "components": [{"name": "prefill"}, {"name": "decode"}]},
            {"name": "fixed", "replicas": 1, "components": [{"name": "Frontend"}]},
        ]},
    },
    "status": {"components": {"decode": {"readyReplicas": 3}}},
}


@pytest.mark.parametrize("raw", [ALPHA, BETA], ids=["v1alpha1", "v1beta1"])
def test_both_shapes_give_the_same_internal_view(raw):
    dgd = parse_dgd(raw)
    d = dgd.spec.services["decode"]
    assert (d.effective_replicas, d.adapter_enabled, d.node_count, d.gpus_per_replica) == (3, True, 2, 8)
    assert dgd.spec.services["Frontend"].component_type == "frontend"
    assert not dgd.spec.services["Frontend"].adapter_enabled
    assert dgd.status.services["decode"].ready_replicas == 3
    assert dgd.planner_services() == ["Planner"]
    assert "llama-decode" in wanted_adapters(dgd)


def test_component_group_with_adapter_is_a_scalable_unit():
    dgd = parse_dgd(BETA)
    pd = dgd.spec.services["pd"]
    assert pd.adapter_enabled and pd.effective_replicas == 2 and pd.node_count == 2
    assert pd.model_extra["groupMembers"] == ["prefill", "decode"]
    assert "fixed" not in dgd.spec.services  # a group without scalingAdapter is no adapter's business
    assert sorted(wanted_adapters(dgd)) == ["llama-decode", "llama-pd"]
    # the multinode rule applies to a group with a multinode member
    assert plan_sync(dgd, "pd", 0, {}).reason == "ScaleToZeroRefused"


@pytest.mark.parametrize("raw", [ALPHA, BETA], ids=["v1alpha1", "v1beta1"])
def test_round_trip_is_lossless(raw):
    other = v.V1BETA1 if v.version_of(raw) == v.V1ALPHA1 else v.V1ALPHA1
    there = v.convert(raw, f"nvidia.com/{other}")
    assert v.dgd_shape(there) == other
    back = v.convert(there, raw["apiVersion"])
    assert back == raw


def test_alpha_to_beta_field_names():
    beta = v.dgd_to_v1beta1(ALPHA)
    comps = {c["name"]: c for c in beta["spec"]["components"]}
    assert comps["decode"]["type"] == "decode" and comps["decode"]["scalingAdapter"] == {}
    assert "scalingAdapter" not in comps["Frontend"] and comps["Frontend"]["extraPodSpec"]
    assert beta["spec"]["someFutureField"] == {"x": 1}
    assert beta["status"]["components"]["decode"]["componentKind"] == "x"
    # v1beta1 list order survives a v1alpha1 map
    assert [c["name"] for c in v.dgd_to_v1beta1(v.dgd_to_v1alpha1(BETA))["spec"]["components"]] == \
        ["decode", "Frontend", "prefill", "Planner"]


@pytest.mark.parametrize("src,version,key", [
    ({"serviceName": "decode"}, v.V1BETA1, "componentName"),
    ({"componentName": "decode"}, v.V1ALPHA1, "serviceName"),
    ({"serviceName": "decode"}, v.V1ALPHA1, "serviceName"),
])
def test_dgdsa_ref_renamed(src, version, key):
    obj = {"apiVersion": "nvidia.com/x", "kind": "DynamoGraphDeploymentScalingAdapter",
           "metadata": {"name": "a", "labels": {"k": "v"}},
           "spec": {"replicas": 2, "dgdRef": {"name": "llama", **src}, "extra": True}, "status": {"replicas": 2}}
    out = v.convert(obj, f"nvidia.com/{version}")
    assert out["spec"]["dgdRef"] == {"name": "llama", key: "decode"}
    assert out["spec"]["extra"] is True and out["metadata"] == obj["metadata"] and out["status"] == obj["status"]
    assert v.dgdsa_service(out) == "decode"
    assert AdapterInfo.from_raw(out).service == "decode"


@pytest.mark.parametrize("raw,service,ops", [
    (ALPHA, "decode", [{"op": "test", "path": "/spec/services/decode/replicas", "value": 3},
                       {"op": "replace", "path": "/spec/services/decode/replicas", "value": 5}]),
    (ALPHA, "Planner", [{"op": "add", "path": "/spec/services/Planner/replicas", "value": 5}]),
    (BETA, "decode", [{"op": "test", "path": "/spec/components/0/name", "value": "decode"},
                      {"op": "test", "path": "/spec/components/0/replicas", "value": 3},
                      {"op": "replace", "path": "/spec/components/0/replicas", "value": 5}]),
    (BETA, "Planner", [{"op": "test", "path": "/spec/components/3/name", "value": "Planner"},
                       {"op": "add", "path": "/spec/components/3/replicas", "value": 5}]),
    (BETA, "pd", [{"op": "test", "path": "/spec/experimental/componentGroups/0/name", "value": "pd"},
                  {"op": "test", "path": "/spec/experimental/componentGroups/0/replicas", "value": 2},
                  {"op": "replace", "path": "/spec/experimental/componentGroups/0/replicas", "value": 5}]),
])
def test_replicas_patch(raw, service, ops):
    assert v.replicas_patch(raw, service, 5) == ops


@pytest.mark.parametrize("raw", [ALPHA, BETA], ids=["v1alpha1", "v1beta1"])
def test_replicas_patch_unknown_service(raw):
    with pytest.raises(LookupError):
        v.replicas_patch(raw, "nope", 1)


@pytest.mark.parametrize("preferred,served,dgd,dgdsa", [
    # current Dynamo: both served, v1beta1 preferred
    ("v1beta1", {"v1alpha1": {"dynamographdeployments", "dynamographdeploymentscalingadapters"},
                 "v1beta1": {"dynamographdeployments", "dynamographdeploymentscalingadapters"}}, "v1beta1", "v1beta1"),
    # older Dynamo or our CRDs without the conversion webhook
    ("v1alpha1", {"v1alpha1": {"dynamographdeployments", "dynamographdeploymentscalingadapters"}},
     "v1alpha1", "v1alpha1"),
    # a preferred version that does not serve one kind: the newest that does
    ("v1beta1", {"v1alpha1": {"dynamographdeploymentscalingadapters", "dynamographdeployments"},
                 "v1beta1": {"dynamographdeployments"}}, "v1beta1", "v1alpha1"),
    # an unknown newer preferred version is skipped
    ("v2", {"v2": {"dynamographdeployments"}, "v1beta1": {"dynamographdeployments"}}, "v1beta1", "v1alpha1"),
    (None, {}, "v1alpha1", "v1alpha1"),
])
def test_version_choice(preferred, served, dgd, dgdsa):
    assert v.choose(preferred, served, "dynamographdeployments") == dgd
    assert v.choose(preferred, served, "dynamographdeploymentscalingadapters") == dgdsa


def test_adapter_body_per_version():
    owner = {"kind": "DynamoGraphDeployment", "name": "llama"}
    assert v.adapter_body("v1beta1", "llama-decode", "llama", "decode", 3, owner)["spec"] == \
        {"replicas": 3, "dgdRef": {"name": "llama", "componentName": "decode"}}
    assert v.adapter_body("v1alpha1", "llama-decode", "llama", "decode", 3, owner)["spec"]["dgdRef"]["serviceName"] \
        == "decode"
