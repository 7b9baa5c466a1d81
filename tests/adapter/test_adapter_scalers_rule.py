"""The one rule for "who else scales this adapter" (adapter/sync.py), shared by the controller's
index of autoscalers and the planner's listing of them."""

from __future__ import annotations

import pytest

from adapter.models import DGD
from adapter.sync import HPA_KIND, SCALED_OBJECT_KIND, Scalers, other_scalers, targeted_adapter

DGDSA = "DynamoGraphDeploymentScalingAdapter"


@pytest.mark.parametrize("kind, ref, target", [
    (HPA_KIND, {"kind": DGDSA, "name": "a", "apiVersion": "nvidia.com/v1alpha1"}, "a"),
    (HPA_KIND, {"kind": DGDSA, "name": "a", "apiVersion": "nvidia.com/v1beta1"}, "a"),
    (HPA_KIND, {"kind": DGDSA, "name": "a"}, None),  # an HPA resolves the kind in apiVersion's group
    (HPA_KIND, {"kind": DGDSA, "name": "a", "apiVersion": "example.com/v1"}, None),
    (HPA_KIND, {"kind": "Deployment", "name": "a", "apiVersion": "apps/v1"}, None),
    (SCALED_OBJECT_KIND, {"kind": DGDSA, "name": "a"}, "a"),
    (SCALED_OBJECT_KIND, {"kind": DGDSA, "name": "a", "apiVersion": "nvidia.com/v1alpha1"}, "a"),
    (SCALED_OBJECT_KIND, {"name": "a"}, None),
])
def test_targeted_adapter(kind, ref, target):
    assert targeted_adapter(kind, ref) == target


def test_other_scalers_picks_the_ones_aimed_at_the_adapter_and_in_graph_planners():
    dgd = DGD.model_validate({"metadata": {"name": "llama"}, "spec": {"services": {
        "decode": {"replicas": 1, "scalingAdapter": {"enabled": True}},
        "Planner": {"componentType": "planner", "replicas": 1}}}})
    autoscalers = [
        (HPA_KIND, "h1", {"kind": DGDSA, "name": "llama-decode", "apiVersion": "nvidia.com/v1alpha1"}),
        (HPA_KIND, "h2", {"kind": DGDSA, "name": "other", "apiVersion": "nvidia.com/v1alpha1"}),
        (SCALED_OBJECT_KIND, "so", {"kind": DGDSA, "name": "llama-decode"}),
    ]
    assert other_scalers("llama-decode", dgd, autoscalers) == [
        "DynamoPlanner/llama/Planner", "HorizontalPodAutoscaler/h1", "ScaledObject/so"]
    assert other_scalers("llama-decode", None, autoscalers[1:2]) == []


def test_kedas_own_hpa_counts_as_its_scaledobject_not_as_a_second_scaler():
    """Real KEDA drives a ScaledObject through an HPA named keda-hpa-<scaledobject>, aimed at the
    same adapter: one scaler, not a conflict. Another HPA beside it still is one."""
    ref = {"kind": DGDSA, "name": "llama-decode", "apiVersion": "nvidia.com/v1alpha1"}
    keda = [(SCALED_OBJECT_KIND, "decode-so", {"kind": DGDSA, "name": "llama-decode"}),
            (HPA_KIND, "keda-hpa-decode-so", ref)]
    assert other_scalers("llama-decode", None, keda) == ["ScaledObject/decode-so"]
    assert other_scalers("llama-decode", None, [*keda, (HPA_KIND, "keda-hpa-someone-else", ref)]) == [
        "HorizontalPodAutoscaler/keda-hpa-someone-else", "ScaledObject/decode-so"]
    assert Scalers(autoscalers=other_scalers("llama-decode", None, keda)).conflict() is None
    # without its ScaledObject an HPA of that name is just an HPA
    assert other_scalers("llama-decode", None, keda[1:]) == ["HorizontalPodAutoscaler/keda-hpa-decode-so"]
