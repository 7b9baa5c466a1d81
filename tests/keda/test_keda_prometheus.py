"""KEDA's own `prometheus` trigger, from examples/keda/scaledobject-prometheus.yaml, against
real KEDA and the real Prometheus that scrapes live Dynamo: the frontend's queued requests scale
the prefill DGDSA up under load and back, with no metrics server of ours in the path."""

from __future__ import annotations

import pytest
from helpers import wait_for
from keda_support import localise

pytestmark = [pytest.mark.cluster, pytest.mark.keda]
EXAMPLE = "scaledobject-prometheus.yaml"


def test_prometheus_example_scales_a_dgdsa_up_and_back(live):
    docs = localise(EXAMPLE, live, "prefill")
    so = docs[-1]
    query = so["spec"]["triggers"][0]["metadata"]["query"]
    # the example's PromQL selects the DGD by Dynamo's own label, which a stock scrape carries
    assert live.stack.prometheus.query(query), f"Prometheus has nothing for {query}"
    live.apply(docs)
    name = so["metadata"]["name"]
    wait_for(lambda: live.scaled_object_ready(name), timeout=60, what="ScaledObject Ready")
    wait_for(lambda: live.kubectl.json("-n", live.namespace, "get", "hpa", f"keda-hpa-{name}")
             .get("status", {}).get("currentMetrics"), timeout=60, what="KEDA's HPA reading the metric")
    assert live.peak_under_load("prefill") >= 2
    assert live.conditions(name).get("Fallback") != "True"
    live.wait_replicas("prefill", 1, name)
