"""Measured attainment against a real Dynamo frontend and mocker workers scraped by Prometheus:
a burst of requests is counted from the frontend's TTFT histogram over the planning window by
the planner's observer (one DGD's own queries) and by a fleet planner process (its round's
shared queries), which exports the counts and the attainment and shows them in its status. With
a TTFT target of 1 ms every request misses it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from helpers import wait_dgd_ready, wait_for
from prometheus_client.parser import text_string_to_metric_families

from devcluster import manifests, scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.stack import LiveStack
from external_metrics.prom import PrometheusClient
from scaler.policy import SLOCounts
from scaler.service.config import ServiceConfig
from scaler.service.observe import LiveObserver

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.dynamo]

BURST = 40
INTERVAL_S = 15  # the window is two intervals, 30 s: increase() extrapolates by about 30/29 (1 s scrapes)
TTFT_MS = 1.0  # below any TTFT the frontend can measure


def within(x: float, n: int, scrape_s: float) -> bool:
    """`x` is `n` as increase() reads it: Prometheus extrapolates the first and last sample of the
    window to its ends when they are within 1.1 scrape intervals of them (so by at most
    window / (window - 2.2 scrapes), about 8 % here, typically 30/29), and the count is rounded."""
    window = 2 * INTERVAL_S
    return n <= x <= n * window / (window - 2.2 * scrape_s) + 0.5


def planner_gauges(url: str, dgd: str) -> dict[tuple[str, str], float]:
    """The planner's attainment and window counts of DGD `dgd` as (metric, kind) -> value."""
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name in ("dynamo_planner_attainment", "dynamo_planner_window_requests"):
            for s in family.samples:
                if s.labels.get("dgd") == dgd:
                    out[(family.name, s.labels["kind"])] = s.value
    return out


def test_the_window_s_requests_are_measured_from_the_frontend_histograms(cluster, kubectl, kube_api, namespace,
                                                                         tmp_path):
    policy = {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
              "metadata": {"name": "llm"},
              "spec": {"dgdRef": {"name": "llm"}, "sla": {"ttftMs": TTFT_MS, "itlMs": 50},
                       "pools": [{"name": pool, "minReplicas": 1, "maxReplicas": 1} for pool in ("prefill", "decode")]}}
    planner = {"fleet": {"namespaces": [namespace], "resync_s": 5},
               "planner": {"interval_s": INTERVAL_S, "headroom": "error_budget"},
               "profile_file": str(scenario.MOCKER_PROFILE)}
    with LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, namespace, scenario.STARTUP_DELAY_S) as stack:
        stack.start_prometheus()
        stack.start_standin()
        stack.start_adapter()
        kubectl.apply([manifests.dgd("llm", manifests.disaggregated(), scenario.STARTUP_DELAY_S), policy], namespace)
        wait_dgd_ready(kubectl, namespace, "llm", stack, timeout=90)
        url = wait_for(lambda: stack.frontend_url("llm"), what="frontend")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model served")
        stack.start_planner(planner)
        api = f"http://127.0.0.1:{stack.planner_port}"
        scrape_s = stack.prometheus.scrape_interval_s

        def send(n: int) -> None:
            summary, _ = asyncio.run(run_load(url, synthetic(n * 10, 0.1, input_length=200, output_length=20)))
            assert summary.ok == n and summary.failed == 0, summary.line()

        # the planner's observer of this DGD, reading for itself (not in a fleet round)
        cfg = ServiceConfig.model_validate({
            "deployment": {"name": "llm", "namespace": namespace, "prefill_service": "prefill",
                           "decode_service": "decode"},
            "planner": {"interval_s": INTERVAL_S, "ttft_ms": TTFT_MS, "itl_ms": 50}})
        observer = LiveObserver(cfg, kube_api, PrometheusClient(stack.prometheus.url))
        def measured() -> SLOCounts | None:
            return observer.observe().observation.traffic.slo

        def exported() -> dict | None:
            got = planner_gauges(api, "llm")
            n = got.get(("dynamo_planner_window_requests", "measured"))
            return got if n is not None and within(n, BURST, scrape_s) else None

        # a first request makes the histograms exist; then a window in which nothing arrived
        send(1)
        wait_for(lambda: (s := measured()) is not None and s.measured == 0, timeout=3 * INTERVAL_S, interval=1,
                 what="the frontend's histograms scraped, the window idle")
        send(BURST)
        slo = wait_for(lambda: (s := measured()) and within(s.measured, BURST, scrape_s) and s,
                       timeout=2 * INTERVAL_S, interval=1, what=f"the observer measures the {BURST} requests")
        print("observer:", slo)
        assert slo.ttft_missed == slo.measured, slo  # nothing meets 1 ms
        # the fleet planner: its round's shared query, exported and shown
        gauges = wait_for(exported, timeout=3 * INTERVAL_S, interval=0.5,
                          what=f"the planner exports the {BURST} requests")
        print("planner gauges:", gauges)
        assert gauges[("dynamo_planner_window_requests", "ttft_missed")] == \
            gauges[("dynamo_planner_window_requests", "measured")]
        assert gauges[("dynamo_planner_attainment", "ttft")] == 0.0
        status = httpx.get(f"{api}/v1/deployments/{namespace}/llm/status",
                           headers={"Authorization": f"Bearer {stack.planner_token}"}).json()
        assert status["measured_attainment"] is not None, status
        shown = status["measured_attainment"]
        assert shown["ttft_missed"] == shown["measured"], shown
        # the edges the frontend exports (docs/planner.md, "Measured attainment, live")
        for name in ("time_to_first_token_seconds", "inter_token_latency_seconds"):
            edges = PrometheusClient(stack.prometheus.url).query(
                f'count by (le) (dynamo_frontend_{name}_bucket{{namespace="{namespace}"}})')
            print(name, sorted(float(s.labels["le"]) for s in edges))
