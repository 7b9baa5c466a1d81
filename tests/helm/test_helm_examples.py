"""Every example applies to the real API server with strict field validation (the KEDA ones
against a ScaledObject CRD schema written from KEDA's documented fields), and the planner
example is a valid planner configuration with a loadable profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helm_chart_helpers import REPO, ensure_keda_crd

EXAMPLES = REPO / "examples"
MANIFESTS = sorted([EXAMPLES / "dgd-disagg.yaml", *(EXAMPLES / "hpa").glob("*.yaml"), *(EXAMPLES / "keda").glob("*.yaml")])


def _subset(want, got) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(map(_subset, want, got))
    return want == got or str(want) == str(got)


def _strict_apply(kubectl, path: Path, ns: str):
    return kubectl.run("apply", "--server-side", "--validate=strict", "--field-manager=examples",
                       "-n", ns, "-f", str(path), check=False)


@pytest.mark.cluster
def test_every_example_applies_and_round_trips(kubectl, namespace):
    ensure_keda_crd(kubectl)
    for path in MANIFESTS:
        proc = _strict_apply(kubectl, path, namespace)
        assert proc.returncode == 0, f"{path.relative_to(REPO)}: {proc.stderr}"
        for doc in yaml.safe_load_all(path.read_text()):
            kind = f"{doc['kind'].lower()}.{doc['apiVersion'].split('/')[0]}" if "/" in doc["apiVersion"] else doc["kind"]
            if doc["apiVersion"] == "autoscaling/v2":
                kind = "horizontalpodautoscalers.v2.autoscaling"
            got = kubectl.json("get", kind, doc["metadata"]["name"], "-n", namespace)
            # nothing pruned: what is stored is what the example says (plus defaults)
            assert _subset(doc["spec"], got["spec"]), f"{path.name}: stored spec differs: {got['spec']}"
    dgd = kubectl.json("get", "dgd", "llama-disagg", "-n", namespace)
    adapted = sorted(s for s, v in dgd["spec"]["services"].items() if v.get("scalingAdapter", {}).get("enabled"))
    assert adapted == ["decode", "prefill"]
    hpa = kubectl.json("get", "horizontalpodautoscalers.v2.autoscaling", "llama-disagg-prefill", "-n", namespace)
    metric = hpa["spec"]["metrics"][0]["external"]
    assert metric["metric"]["name"] == "dynamo_queue_depth" and metric["target"]["type"] == "AverageValue"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    hpa = kubectl.json("get", "horizontalpodautoscalers.v2.autoscaling", "llama-disagg-decode", "-n", namespace)
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "dynamo_kv_cache_usage_sum"
    kinds = {so["spec"]["triggers"][0]["type"] for so in kubectl.json("get", "scaledobjects.keda.sh", "-n", namespace)["items"]}
    assert kinds == {"metrics-api", "external", "prometheus"}


@pytest.mark.cluster
def test_the_scaledobject_schema_rejects_a_misspelt_field(kubectl, namespace):
    """The CRD stand-in really validates: HPA-style names are not ScaledObject fields."""
    ensure_keda_crd(kubectl)
    doc = next(d for d in yaml.safe_load_all((EXAMPLES / "keda" / "scaledobject-metrics-api.yaml").read_text())
               if d["kind"] == "ScaledObject")
    doc["spec"]["minReplicas"] = doc["spec"].pop("minReplicaCount")
    proc = kubectl.run("apply", "--server-side", "--validate=strict", "-n", namespace, "-f", "-",
                       input=json.dumps(doc), check=False)
    assert proc.returncode != 0, "a misspelt field was accepted"
    assert ".spec.minReplicas: field not declared in schema" in proc.stderr or \
        'unknown field "spec.minReplicas"' in proc.stderr, proc.stderr
    doc = next(d for d in yaml.safe_load_all((EXAMPLES / "keda" / "scaledobject-external.yaml").read_text())
               if d["kind"] == "ScaledObject")
    doc["spec"]["triggers"][0]["metadata"]["targetValue"] = 0.7  # metadata values are strings
    proc = kubectl.run("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)
    assert proc.returncode != 0, "a number in trigger metadata was accepted"
    assert "metadata.targetValue: expected string" in proc.stderr or "must be of type string" in proc.stderr, proc.stderr


def test_planner_example_is_a_valid_configuration():
    from scaler.planner.config import PlannerConfig
    from scaler.profile import PerformanceProfile

    path = EXAMPLES / "planner" / "planner-config.yaml"
    cfg = yaml.safe_load(path.read_text())
    planner = PlannerConfig.model_validate(cfg["planner"])
    assert planner.gpu_budget and planner.ttft_ms and planner.itl_ms
    dgd = yaml.safe_load((EXAMPLES / "dgd-disagg.yaml").read_text())
    assert cfg["deployment"]["name"] == dgd["metadata"]["name"]
    assert {cfg["deployment"]["prefill_service"], cfg["deployment"]["decode_service"]} <= set(dgd["spec"]["services"])
    profile = PerformanceProfile.load(path.parent / cfg["profile_file"])
    # anchored on the published H200 figures: ISL 3000 -> ~40k prefill tok/s/GPU at ~80 ms
    assert 70 <= profile.prefill.ttft_ms_at(3000) <= 90
    thpt, _ = profile.decode.best_throughput_per_gpu(itl_target_ms=planner.itl_ms, context_length=4096)
    assert 5000 <= thpt <= 12000


FLEET = EXAMPLES / "planner" / "fleet"


@pytest.mark.cluster
def test_fleet_example_applies_and_its_values_plan_its_namespaces(kubectl, namespace, dgd_namespace):
    """The fleet example's deployments and policies (each namespace mapped to a test namespace)
    apply with strict validation against the CRDs and are stored as written; every policy names a
    deployment of the example and pools it has, in its own namespace; and the fleet values plan
    exactly the policies' namespaces."""
    dgds = list(yaml.safe_load_all((FLEET / "dgds.yaml").read_text()))
    policies = list(yaml.safe_load_all((FLEET / "policies.yaml").read_text()))
    single = yaml.safe_load((EXAMPLES / "planner" / "policy-llama-disagg.yaml").read_text())
    values = yaml.safe_load((FLEET / "values-fleet.yaml").read_text())
    planned = values["planner"]["fleet"]["namespaces"]
    assert {p["metadata"]["namespace"] for p in policies} == set(planned)
    to_test = dict(zip(planned, (namespace, dgd_namespace)))
    from adapter.models import parse_dgd
    from scaler.control.policy import PolicySpec
    from scaler.service.fleet import resolve_pools

    by_name = {(d["metadata"]["namespace"], d["metadata"]["name"]): parse_dgd(d) for d in dgds}
    for p in policies:
        # the pools as the fleet planner finds them; bounds and pins name those pools
        pools = resolve_pools(by_name[(p["metadata"]["namespace"], p["spec"]["dgdRef"]["name"])],
                              PolicySpec.model_validate(p["spec"]).roles, p["metadata"]["name"])
        named = {b["name"] for b in p["spec"].get("pools", [])} | {x["pool"] for x in p["spec"].get("pins", [])}
        assert named <= {pools.prefill, pools.decode}, f"{p['metadata']['name']}: {named} are not its pools {pools}"
    assert len({p["spec"]["priority"] for p in policies}) == len(policies), "priorities should order the fleet"
    assert any(x.get("expiresAt") for p in policies for x in p["spec"].get("pins", [])), "a pin with an expiry"
    assert any(p["spec"].get("roles") for p in policies), "a policy naming its pools by role"

    single["metadata"]["namespace"] = "team-a"
    for doc in [*dgds, *policies, single]:
        doc["metadata"]["namespace"] = ns = to_test[doc["metadata"]["namespace"]]
        proc = kubectl.run("apply", "--server-side", "--validate=strict", "--field-manager=examples", "-f", "-",
                           input=json.dumps(doc), check=False)
        assert proc.returncode == 0, f"{doc['kind']} {doc['metadata']['name']}: {proc.stderr}"
        kind = "dgd" if doc["kind"] == "DynamoGraphDeployment" else "dsp"
        got = kubectl.json("get", kind, doc["metadata"]["name"], "-n", ns)
        assert _subset(doc["spec"], got["spec"]), f"{doc['metadata']['name']}: stored spec differs: {got['spec']}"
