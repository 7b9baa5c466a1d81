"""SLA targets from a DynamoGraphDeploymentRequest: parsing (pure) and the planner taking them,
keeping an API-set SLA across a restart, and following a changed request (real control plane)."""

from __future__ import annotations

import httpx
import pytest
from helpers import wait_for

from scaler.service.sla_request import RequestSLAError, parse
from test_planner_service import DGD, TOKEN, _adapter, _start, _stop

REPO_CRD = "devcluster/crds/nvidia.com_dynamographdeploymentrequests.yaml"


def dgdr(ttft, itl, generation: int = 1) -> dict:
    return {"metadata": {"name": "llama-req", "namespace": "ns", "generation": generation},
            "spec": {"model": "m", "sla": {"ttft": ttft, "itl": itl}}}


def test_parse_takes_milliseconds_and_names_bad_fields():
    got = parse(dgdr(800, 40, generation=3))
    assert (got.generation, got.sla.ttft_ms, got.sla.itl_ms) == (3, 800, 40)
    assert parse({"metadata": {}, "spec": {"model": "m"}}) is None
    with pytest.raises(RequestSLAError, match=r"ns/llama-req: spec.sla.itl: Input should be greater than 0"):
        parse(dgdr(800, 0))
    with pytest.raises(RequestSLAError, match="spec.sla needs both ttft and itl"):
        parse({"metadata": {"name": "x"}, "spec": {"sla": {"ttft": 5}}})
    with pytest.raises(RequestSLAError, match="spec.sla.ttft"):
        parse(dgdr("fast", 40))


@pytest.mark.cluster
def test_planner_takes_the_sla_of_its_deployment_request(cluster, kubectl, namespace, standin, prometheus,
                                                         tmp_path, repo_root):
    kubectl("apply", "--server-side", "-f", str(repo_root / REPO_CRD))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/dynamographdeploymentrequests.nvidia.com")
    kubectl.apply(DGD, namespace)
    kubectl.apply([_adapter("prefill", 1), _adapter("decode", 1)], namespace)
    request = {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeploymentRequest",
               "metadata": {"name": "llama-req"}, "spec": {"model": "m", "sla": {"ttft": 800, "itl": 40}}}
    kubectl.apply(request, namespace)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def sla(url: str) -> dict:
        return httpx.get(url + "/v1/status", headers=auth).json()["sla"]

    proc, url = _start(cluster, namespace, tmp_path, prometheus.url, deployment={"request": "llama-req"})
    try:
        wait_for(lambda: sla(url) == {"ttft_ms": 800, "itl_ms": 40}, timeout=20, what="SLA from the request")
        # an operator sets another SLA; a restart keeps it (the request has not changed since)
        assert httpx.put(url + "/v1/sla", json={"ttft_ms": 600, "itl_ms": 30}, headers=auth).status_code == 200
    finally:
        _stop(proc)
    proc, url = _start(cluster, namespace, tmp_path, prometheus.url, deployment={"request": "llama-req"})
    try:
        wait_for(lambda: httpx.get(url + "/v1/decisions", headers=auth).json()["items"], timeout=20, what="a tick")
        assert sla(url) == {"ttft_ms": 600, "itl_ms": 30}
        # the request changes: its SLA wins again, and the change is audited as an Event
        kubectl.apply({**request, "spec": {"model": "m", "sla": {"ttft": 1000, "itl": 60}}}, namespace)
        wait_for(lambda: sla(url) == {"ttft_ms": 1000, "itl_ms": 60}, timeout=20, what="SLA follows the request")
        events = kubectl.json("-n", namespace, "get", "events")["items"]
        assert any("DynamoGraphDeploymentRequest/llama-req" in (e.get("message") or "") for e in events), \
            [e.get("message") for e in events]
    finally:
        _stop(proc)
