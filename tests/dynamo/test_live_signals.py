"""The external metrics API on live Dynamo series: real frontend and mocker workers -> Prometheus
-> metrics server -> kube-apiserver aggregation -> kubectl and the real HPA, which scales the
decode pool 1 -> N -> 1 on `dynamo_queue_depth` under a load burst.

Both label modes: `dynamo`, where Prometheus labels targets as Dynamo's stock PodMonitors do
(no `dgd`/`service`) and the default mapping finds the DGD and service from Dynamo's own
labels; and `dgd-labels`, where relabelled PodMonitors add `dgd`/`service` and the metrics
server reads a signals file selecting that preset."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse

import httpx
import pytest
from helpers import wait_dgd_ready, wait_for
from kubernetes.utils.quantity import parse_quantity

from devcluster import scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.manifests import external_hpa
from devcluster.prometheus import Prometheus
from devcluster.stack import LiveStack
from external_metrics.signals import DEFAULT_SIGNALS, SignalMapping

pytestmark = pytest.mark.cluster
BASE = "/apis/external.metrics.k8s.io/v1beta1"
SETTLED_EVALUATIONS = 20  # 5 s of Prometheus evaluations at the 250 ms step `held` uses


def read(kubectl, namespace: str, metric: str, selector: str) -> list[dict]:
    path = f"{BASE}/namespaces/{namespace}/{metric}?labelSelector={urllib.parse.quote(selector)}"
    r = kubectl.run("get", "--raw", path, check=False)
    return json.loads(r.stdout)["items"] if r.returncode == 0 else []


def value(item: dict) -> float:
    return float(parse_quantity(item["value"]))


def held(prometheus, mapping: SignalMapping, signal: str, namespace: str, labels: dict[str, str],
         seconds: float = 30.0) -> list[float]:
    """What Prometheus computed for the signal's own PromQL for one series over the last
    `seconds`, evaluated every 250 ms (finer than the 1 s scrape interval)."""
    end = time.time()
    series = prometheus.query_range(mapping.render(signal), end - seconds, end, 0.25)
    out = []
    for s in series:
        ns, ident = mapping.identity(s["metric"])
        if ns == namespace and all(ident.get(k) == x for k, x in labels.items()):
            out += [float(v) for _, v in s["values"]]
    return out


def served_as_held(kubectl, prometheus, mapping: SignalMapping, namespace: str, signal: str,
                   labels: dict[str, str]) -> dict:
    """Read one series through the aggregation layer once it is above zero, and check it is a
    value Prometheus computed for that series: exactly (to the quantity's nano precision) for
    instant signals, within the range Prometheus computed for windowed ones (whose rate
    extrapolation moves with the evaluation time)."""
    selector = ",".join(f"{k}={v}" for k, v in labels.items())

    def settled() -> list[dict] | None:
        # A series born a moment before the read has only the evaluations after it in Prometheus'
        # range, none at the read's own time: compare only once it has held for a few seconds.
        if len(held(prometheus, mapping, signal, namespace, labels)) < SETTLED_EVALUATIONS:
            return None
        return [i for i in read(kubectl, namespace, signal, selector) if value(i) > 0]

    items = wait_for(settled, timeout=40, what=f"{signal} above zero for {selector}, held a few seconds")
    assert len(items) == 1, items
    got, seen = value(items[0]), held(prometheus, mapping, signal, namespace, labels)
    assert seen, f"Prometheus holds no {signal} for {selector}"
    if DEFAULT_SIGNALS[signal].windowed:
        assert min(seen) - 1e-9 <= got <= max(seen) + 1e-9, f"{signal}: API {got}, Prometheus {min(seen)}..{max(seen)}"
    else:
        assert any(abs(got - h) <= 1e-9 + 1e-9 * abs(h) for h in seen), \
            f"{signal}: API {got}, Prometheus held {sorted(set(seen))}"
    print(f"{signal} {selector}: API {got}, Prometheus {min(seen):.4g}..{max(seen):.4g}")
    return items[0]


# (label mode of Prometheus and the mapping, the decode pool's `service`, the frontend's)
MODES = {"dynamo": ("backend", "frontend"), "dgd-labels": ("decode", "Frontend")}


@pytest.mark.parametrize("mode", list(MODES))
def test_live_dynamo_signals_through_the_aggregation_layer_drive_an_hpa(cluster, kubectl, namespace, tmp_path, mode):
    decode, frontend = MODES[mode]
    signals = None  # the built-in default mapping
    if mode == "dgd-labels":
        signals = tmp_path / "signals.yaml"
        signals.write_text("preset: dgd-labels\n")
    mapping = SignalMapping.load(signals)
    with LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, namespace, scenario.STARTUP_DELAY_S) as stack:
        stack.prometheus = Prometheus(stack.workdir / "prometheus", scrape_interval_s=1.0,
                                      labels="podmonitor" if mode == "dynamo" else "dgd-labels")
        stack.start_prometheus()
        stack.start_standin()
        stack.start_adapter()
        stack.start_metrics_server(signals_file=signals)
        kubectl.apply([scenario.LLM], namespace)
        wait_dgd_ready(kubectl, namespace, "llm", stack, timeout=90)
        url = wait_for(lambda: stack.frontend_url("llm"), what="frontend")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model served")
        hpa = external_hpa("decode-queue", "llm-decode", "dynamo_queue_depth", "4", {"dgd": "llm", "service": decode},
                           max_replicas=3, behavior={"scaleUp": {"stabilizationWindowSeconds": 0},
                                                     "scaleDown": {"stabilizationWindowSeconds": 10}})
        wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llm-decode", check=False).returncode == 0,
                 what="decode adapter")
        kubectl.apply(hpa, namespace)

        result: dict = {}
        peak = {"decode": 1}
        load = threading.Thread(target=lambda: result.setdefault("load", asyncio.run(run_load(
            url, synthetic(rate_per_s=12, duration_s=35, input_length=4000, output_length=100)))))
        load.start()
        try:
            # during the burst the API serves what Prometheus computes, per service, with Dynamo's labels
            rate = served_as_held(kubectl, stack.prometheus, mapping, namespace, "dynamo_request_rate",
                                  {"dgd": "llm", "service": frontend})
            kv = served_as_held(kubectl, stack.prometheus, mapping, namespace, "dynamo_kv_cache_usage",
                                {"dgd": "llm", "service": decode})
            assert value(kv) <= 1 and kv["metricLabels"]["model"] == "tiny-mocker"
            served_as_held(kubectl, stack.prometheus, mapping, namespace, "dynamo_queue_depth",
                           {"dgd": "llm", "service": decode})
            # the stand-in runs the processes as the operator would (DYN_NAMESPACE <ns>-<dgd>), and
            # Dynamo exports that namespace with `_` for `-`; neither the frontend's series nor the
            # mocker's vllm:* gauges carry it, so only the pod join of preset `dynamo` reports it
            dyn = f"{namespace}-llm".replace("-", "_") if mode == "dynamo" else ""
            assert kv["metricLabels"]["dynamo_namespace"] == dyn
            assert rate["metricLabels"]["dynamo_namespace"] == dyn
            if mode == "dynamo":  # nothing but what a stock PodMonitor gives
                series = stack.prometheus.query(f'up{{namespace="{namespace}"}}')
                assert series and all(set(s["metric"]) == {"__name__", "namespace", "pod", "container", "endpoint",
                                                           "job", "instance"} for s in series), series
                assert {s["metric"]["job"] for s in series} == {"dynamo-system/dynamo-frontend",
                                                                "dynamo-system/dynamo-worker"}
            # the real HPA scales the decode pool on it
            while load.is_alive():
                peak["decode"] = max(peak["decode"], scenario.replicas(kubectl, namespace, "llm", "decode"))
                load.join(1)
        finally:
            load.join(120)
        summary = result["load"][0]
        print("load:", summary.line(), "peak decode:", peak["decode"])
        assert summary.failed_unexplained == 0, summary.line()
        assert peak["decode"] >= 2
        wait_for(lambda: scenario.replicas(kubectl, namespace, "llm", "decode") == 1, timeout=90, interval=1,
                 what="decode back to 1 once the queue is gone")
        wait_for(lambda: scenario.ready_pods(kubectl, namespace, "llm", "decode") == 1, timeout=30,
                 what="one decode pod left")
        kubectl("-n", namespace, "delete", "hpa", "decode-queue")
