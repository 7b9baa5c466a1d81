"""No component dies quietly: the planner process keeps planning through malformed Prometheus
answers and an API-server outage, and its /healthz fails while its loop is stuck."""

from __future__ import annotations

import os
import signal

import httpx
import pytest
from helpers import wait_for
from planner_support import DGD, BrokenPrometheus, IdleDeployment, decisions, metric, start_planner, stop

from devcluster import controlplane
from devcluster.procs import terminate
from devcluster.prometheus import Prometheus

pytestmark = pytest.mark.cluster

def _adapters() -> list[dict]:
    return [{"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
             "metadata": {"name": f"llama-{svc}"},
             "spec": {"replicas": n, "dgdRef": {"name": "llama", "serviceName": svc}}}
            for svc, n in (("prefill", 3), ("decode", 2))]


def _spec(k, ns: str, svc: str) -> int:
    return k.json("-n", ns, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]


def _probe(url: str, path: str) -> int | None:
    try:
        return httpx.get(url + path, timeout=2).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture()
def prometheus(tmp_path):
    with Prometheus(tmp_path / "prom") as p:
        yield p


def test_malformed_prometheus_answers_hold_the_fleet_and_planning_resumes(cluster, kubectl, namespace, standin,
                                                                          prometheus, tmp_path):
    kubectl.apply(DGD, namespace)
    kubectl.apply(_adapters(), namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state") == "successful",
             what="DGD ready")
    idle = IdleDeployment(prometheus, tmp_path / "exporters", namespace)
    upstream = BrokenPrometheus(prometheus.url)
    proc, url = start_planner(cluster.kubeconfig, namespace, tmp_path / "planner", upstream.url)
    try:
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1, timeout=30, what="planning through the proxy")
        wait_for(lambda: _probe(url, "/readyz") == 200, timeout=15, what="ready")

        upstream.broken = True
        wait_for(lambda: (d := decisions(url)) and d[-1]["outcome"] == "held_missing_data", timeout=30,
                 what="a decision held for the malformed answer")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-prefill", "--replicas=3")
        # every malformed and partial body answered at least once more after the scale
        served = upstream.served
        wait_for(lambda: upstream.served >= served + len(BrokenPrometheus.BODIES), timeout=60,
                 what="every bad body served")
        assert proc.poll() is None
        # each bad answer was missing data for a held decision, none of them a crashed tick
        assert metric(url, "dynamo_planner_tick_errors_total") == 0
        assert _spec(kubectl, namespace, "prefill") == 3  # no scale-down on an answer that is not data
        last = decisions(url)[-1]
        assert last["outcome"] == "held_missing_data" and "Prometheus error" in last["reason"]
        assert _probe(url, "/healthz") == 200 and _probe(url, "/readyz") == 503
        assert "Prometheus" in httpx.get(url + "/readyz").json()["prometheus"]

        upstream.broken = False
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1, timeout=30, what="planning after the fix")
        assert decisions(url)[-1]["outcome"] == "planned"
        wait_for(lambda: _probe(url, "/readyz") == 200, timeout=15, what="ready again")
    finally:
        stop(proc)
        upstream.close()
        idle.stop()


def test_api_server_outage_and_a_stuck_loop(tmp_path, outage_plane, private_kubectl):
    state, plane, k = outage_plane, outage_plane.dir, private_kubectl
    k.apply(DGD, "outage")
    k.apply(_adapters(), "outage")
    # no operator runs here: the DGD is marked Ready by hand so the planner may write
    k("-n", "outage", "patch", "dgd", "llama", "--subresource=status", "--type=merge", "-p",
      '{"status": {"state": "successful", "conditions": [{"type": "Ready", "status": "True"}]}}')
    with Prometheus(tmp_path / "prom") as prom:
        idle = IdleDeployment(prom, tmp_path / "exporters", "outage")
        proc, url = start_planner(state.kubeconfig, "outage", tmp_path / "planner", prom.url)
        try:
            wait_for(lambda: _spec(k, "outage", "prefill") == 1, timeout=30, what="planning")
            wait_for(lambda: _probe(url, "/readyz") == 200, timeout=15, what="ready")
            assert _probe(url, "/healthz") == 200

            # a frozen API server accepts connections and answers nothing: the tick hangs
            pid = state.pids["kube-apiserver"]
            os.kill(pid, signal.SIGSTOP)
            try:
                wait_for(lambda: _probe(url, "/healthz") == 503, timeout=30, what="/healthz fails while stuck")
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda: _probe(url, "/healthz") == 200, timeout=30, what="/healthz recovers")

            # the API server goes away: ticks fail, are counted, and the loop goes on
            terminate(pid)
            wait_for(lambda: metric(url, "dynamo_planner_tick_errors_total") > 0, timeout=30,
                     what="a failed tick")
            wait_for(lambda: _probe(url, "/readyz") == 503, timeout=15, what="not ready without the API")
            assert httpx.get(url + "/readyz").json()["kubernetes"] != "ok"
            assert _probe(url, "/healthz") == 200  # failing ticks are still ticks

            controlplane.restart_apiserver(plane)
            wait_for(lambda: k.run("get", "namespace", "outage", check=False).returncode == 0, timeout=60,
                     what="API server back")
            n = len(decisions(url))
            k("-n", "outage", "scale", "dgdsa", "llama-prefill", "--replicas=3")
            wait_for(lambda: _spec(k, "outage", "prefill") == 1, timeout=60, what="planning after the restart")
            assert len(decisions(url)) > n and proc.poll() is None
            wait_for(lambda: _probe(url, "/readyz") == 200, timeout=30, what="ready again")
        finally:
            stop(proc)
            idle.stop()
