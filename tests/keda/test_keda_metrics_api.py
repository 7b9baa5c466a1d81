"""KEDA's metrics-api trigger on our /keda/ endpoint (TLS, ServiceAccount token from a
TriggerAuthentication), from examples/keda/scaledobject-metrics-api.yaml, against real KEDA:
it scales a DGDSA up under load and back, and when our metrics server is down KEDA holds the
pool at the example's fallback replicas."""

from __future__ import annotations

import pytest
from helpers import wait_for
from keda_support import localise

pytestmark = [pytest.mark.cluster, pytest.mark.keda]
EXAMPLE = "scaledobject-metrics-api.yaml"
# The example scales prefill on its queue; the mocker's prefill workers export no queue gauge
# (real vLLM/SGLang prefill workers do), so here it scales the decode pool on the decode queue.
POOL = "decode"


def hpa_of(live, so: str) -> dict:
    return live.kubectl.json("-n", live.namespace, "get", "hpa", f"keda-hpa-{so}")


def test_metrics_api_example_scales_a_dgdsa_up_and_back(live):
    docs = localise(EXAMPLE, live, POOL)
    live.apply(docs)
    so = docs[-1]["metadata"]["name"]
    wait_for(lambda: live.scaled_object_ready(so), timeout=60, what="ScaledObject Ready")
    hpa = wait_for(lambda: hpa_of(live, so), what="KEDA's HPA")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "DynamoGraphDeploymentScalingAdapter"
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"llm-{POOL}"
    # the HPA reads the value through KEDA's metrics API server (KEDA owns the APIService)
    wait_for(lambda: hpa_of(live, so).get("status", {}).get("currentMetrics"), timeout=60,
             what="KEDA's HPA reading the metric")
    assert live.peak_under_load(POOL) >= 2
    # scaled on the value read, not on the fallback (which also says 2)
    assert live.conditions(so).get("Fallback") != "True"
    live.wait_replicas(POOL, 1, so)


def test_metrics_api_example_falls_back_while_our_metrics_server_is_down(live):
    docs = localise(EXAMPLE, live, POOL)
    fallback = docs[-1]["spec"]["fallback"]
    live.apply(docs)
    so = docs[-1]["metadata"]["name"]
    wait_for(lambda: live.scaled_object_ready(so), timeout=60, what="ScaledObject Ready")
    wait_for(lambda: hpa_of(live, so).get("status", {}).get("currentMetrics"), timeout=60,
             what="KEDA's HPA reading the metric")
    assert live.replicas(POOL) == 1 != fallback["replicas"]
    server = live.stack.components["metrics-server"]
    server.kill()
    try:
        live.wait_replicas(POOL, fallback["replicas"], so)
        conds = {c["type"]: c for c in live.kubectl.json("-n", live.namespace, "get", "scaledobject", so)
                 ["status"]["conditions"]}
        assert conds["Fallback"]["status"] == "True", conds
    finally:
        server.start()
    # our server back: KEDA reads it again and the pool returns to what the queue asks for
    live.wait_replicas(POOL, 1, so)
