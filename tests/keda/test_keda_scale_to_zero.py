"""Scale to zero with real KEDA: `minReplicaCount: 0` on a burst decode pool, activated by the
frontend's queue (dynamo_queue_depth of the Frontend service, over our gRPC scaler). The pool's
own worker series vanish with its workers, so only a frontend signal can wake it; the base
decode pool (the same Dynamo component) keeps the model served while the burst pool is at zero."""

from __future__ import annotations

import pytest
from helpers import wait_for
from keda_support import BURST, DGD, localise

from devcluster import scenario

pytestmark = [pytest.mark.cluster, pytest.mark.keda]
COOLDOWN_S = 5


def burst_scaled_object(auth: str) -> dict:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": f"{DGD}-{BURST}"},
            "spec": {"scaleTargetRef": {"apiVersion": "nvidia.com/v1alpha1",
                                        "kind": "DynamoGraphDeploymentScalingAdapter", "name": f"{DGD}-{BURST}"},
                     "pollingInterval": 2, "cooldownPeriod": COOLDOWN_S, "minReplicaCount": 0, "maxReplicaCount": 2,
                     "triggers": [{"type": "external", "name": "frontend-queue", "metricType": "AverageValue",
                                   "metadata": {"scalerAddress": "", "metric": "dynamo_queue_depth", "dgd": DGD,
                                                "service": "Frontend", "targetValue": "50",
                                                "activationTargetValue": "0"},
                                   "authenticationRef": {"name": auth}}]}}


def test_burst_pool_scales_to_zero_and_wakes_on_the_frontend_queue(live):
    auth = localise("scaledobject-external.yaml", live, "decode")[0]  # the example's mutual-TLS auth
    so = burst_scaled_object(auth["metadata"]["name"])
    so["spec"]["triggers"][0]["metadata"]["scalerAddress"] = f"127.0.0.1:{live.grpc_port}"
    live.kubectl("-n", live.namespace, "scale", "dgdsa", f"{DGD}-{BURST}", "--replicas=1")
    wait_for(lambda: scenario.ready_pods(live.kubectl, live.namespace, DGD, BURST) == 1, timeout=60,
             what="one burst worker")
    # the burst workers' own series (by pod: in Dynamo's labels they are the decode component)
    own = f'{{namespace="{live.namespace}",pod=~"{DGD}-{BURST}-.*",__name__!~"up|scrape_.*"}}'
    wait_for(lambda: live.stack.prometheus.query(own), timeout=40, what="the burst worker's own series")
    live.apply([auth, so])

    # idle: KEDA scales the pool to zero through the DGDSA's /scale
    live.wait_replicas(BURST, 0, so["metadata"]["name"], timeout=60)
    wait_for(lambda: scenario.ready_pods(live.kubectl, live.namespace, DGD, BURST) == 0, timeout=60,
             what="burst workers gone")
    # its own worker series went with its workers; the frontend's stay (at zero)
    wait_for(lambda: not live.stack.prometheus.query(own), timeout=40, what="the burst worker's series gone")
    front = live.keda_read("dynamo_queue_depth", f"dgd={DGD},service=Frontend")
    assert front.status_code == 200 and front.json()["value"] == 0, front.text

    # load queues at the frontend: KEDA activates the pool from zero
    assert live.peak_under_load(BURST) >= 1
    # and back to zero once the queue is gone and the cooldown has passed
    live.wait_replicas(BURST, 0, so["metadata"]["name"], timeout=60)
