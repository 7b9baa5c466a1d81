"""KEDA's `external` trigger on our gRPC external scaler (mutual TLS, client certificate from a
TriggerAuthentication), from examples/keda/scaledobject-external.yaml, against real KEDA: the
KV-cache sum and the queue scale the decode DGDSA up under load and back."""

from __future__ import annotations

import pytest
from helpers import wait_for
from keda_support import localise

pytestmark = [pytest.mark.cluster, pytest.mark.keda]
EXAMPLE = "scaledobject-external.yaml"


def test_external_example_scales_a_dgdsa_up_and_back_over_grpc(live):
    docs = localise(EXAMPLE, live, "decode")
    so = docs[-1]
    # a sum under AverageValue: KEDA's HPA divides it by the replicas (a mean would cap the pool)
    kv = next(t for t in so["spec"]["triggers"] if t["name"] == "kv-cache")
    assert kv["metricType"] == "AverageValue" and kv["metadata"]["metric"] == "dynamo_kv_cache_usage_sum"
    assert kv["metadata"].get("aggregate", "sum") == "sum"
    live.apply(docs)
    name = so["metadata"]["name"]
    wait_for(lambda: live.scaled_object_ready(name), timeout=60, what="ScaledObject Ready")
    hpa = wait_for(lambda: live.kubectl.json("-n", live.namespace, "get", "hpa", f"keda-hpa-{name}"), what="KEDA's HPA")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "llm-decode"
    # both triggers reach the HPA through KEDA's metrics API server, one External metric each
    assert len(hpa["spec"]["metrics"]) == 2
    wait_for(lambda: len(live.kubectl.json("-n", live.namespace, "get", "hpa", f"keda-hpa-{name}")
                         .get("status", {}).get("currentMetrics") or []) == 2, timeout=60,
             what="KEDA's HPA reading both metrics over gRPC")
    assert live.peak_under_load("decode") >= 2
    assert live.conditions(name).get("Fallback") != "True"
    live.wait_replicas("decode", 1, name)
