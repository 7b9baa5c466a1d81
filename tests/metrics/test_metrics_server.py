"""The metrics server against a real Prometheus scraping a real exporter, over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import httpx
import pytest
from helpers import wait_for

from devcluster.procs import free_port
from devcluster.prometheus import Prometheus

pytestmark = pytest.mark.prometheus
EXPORTER = textwrap.dedent("""
    import sys, time
    from prometheus_client import Gauge, start_http_server
    q = Gauge("dynamo_frontend_queued_requests", "queued", ["model"])
    kv = Gauge("vllm:kv_cache_usage_perc", "kv", ["model"])
    q.labels("llama-8b").set(float(sys.argv[2])); kv.labels("llama-8b").set(float(sys.argv[3]))
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    time.sleep(3600)
""")
TOKEN = "keda-test-token-0123456789"


@pytest.fixture()
def stack(tmp_path):
    procs = []
    prom = Prometheus(tmp_path / "prom").start()
    targets = []
    for svc, queued, kv in (("prefill", 6, 0.2), ("decode", 3, 0.75), ("decode", 1, 0.25)):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", EXPORTER, str(port), str(queued), str(kv)]))
        targets.append((f"127.0.0.1:{port}", {"namespace": "prod", "dgd": "llama", "service": svc,
                                              "dynamo_namespace": "prod-llama"}))
    prom.set_targets("dynamo", targets)
    port = free_port()
    env = {"DYNAMO_METRICS_KEDA_TOKEN": TOKEN}
    import os
    server = subprocess.Popen([sys.executable, "-m", "dynamo_scaling.cli", "metrics-server", "--prometheus-url", prom.url,
                               "--http-port", str(port), "--interval", "1", "--staleness", "4"],
                              env={**os.environ, **env}, stdout=open(tmp_path / "ms.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(url, "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/dynamo_queue_depth")
                 .get("items") and len(_get(url, "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/dynamo_queue_depth")
                                       ["items"]) == 2, timeout=40, what="series collected")
        yield url, prom
    finally:
        server.terminate()
        prom.stop()
        for p in procs:
            p.kill()


def _get(url: str, path: str, **kw) -> dict:
    try:
        return httpx.get(url + path, timeout=2, **kw).json()
    except (httpx.HTTPError, ValueError):
        return {}


BASE = "/apis/external.metrics.k8s.io/v1beta1"


def test_values_labels_selectors_and_errors(stack):
    url, _ = stack
    disc = _get(url, BASE)
    assert disc["kind"] == "APIResourceList" and "dynamo_queue_depth" in [r["name"] for r in disc["resources"]]
    body = _get(url, f"{BASE}/namespaces/prod/dynamo_queue_depth", params={"labelSelector": "service=decode"})
    assert body["kind"] == "ExternalMetricValueList"
    (item,) = body["items"]
    assert item["value"] == "4"  # 3 + 1 summed over the service's pods
    assert item["metricLabels"] == {"namespace": "prod", "dgd": "llama", "service": "decode",
                                    "dynamo_namespace": "prod-llama", "model": "llama-8b"}
    kv = _get(url, f"{BASE}/namespaces/prod/dynamo_kv_cache_usage", params={"labelSelector": "service in (decode)"})
    assert kv["items"][0]["value"] == "500m"  # mean of 0.75 and 0.25
    kvmax = _get(url, f"{BASE}/namespaces/prod/dynamo_kv_cache_usage_max", params={"labelSelector": "service=decode"})
    assert kvmax["items"][0]["value"] == "750m"
    for path, params, code, text in [
        (f"{BASE}/namespaces/prod/nope", {}, 404, "not served"),
        (f"{BASE}/namespaces/prod/dynamo_queue_depth", {"labelSelector": "service in (x"}, 400, "labelSelector"),
        (f"{BASE}/namespaces/Bad_NS/dynamo_queue_depth", {}, 400, "invalid namespace"),
        (f"{BASE}/namespaces/other/dynamo_queue_depth", {}, 404, "no series"),
        (f"{BASE}/namespaces/prod/dynamo_queue_depth", {"labelSelector": "x" * 5000}, 400, "4096"),
    ]:
        r = httpx.get(url + path, params=params)
        assert r.status_code == code and r.json()["kind"] == "Status" and text in r.json()["message"], (path, r.text)


def test_keda_json_with_bearer_token(stack):
    url, _ = stack
    assert httpx.get(url + "/keda/v1/prod/dynamo_queue_depth").status_code == 401
    r = httpx.get(url + "/keda/v1/prod/dynamo_queue_depth", params={"selector": "service=prefill"},
                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()["value"] == 6  # GJSON valueLocation: "value"


def test_prometheus_down_is_unavailable_not_zero_and_recovers(stack):
    url, prom = stack
    prom.stop()
    r = wait_for(lambda: (x := httpx.get(url + f"{BASE}/namespaces/prod/dynamo_queue_depth")).status_code == 503 and x,
                 timeout=20, what="503 within the staleness bound")
    assert r.json()["reason"] == "ServiceUnavailable"
    prom.start()
    wait_for(lambda: httpx.get(url + f"{BASE}/namespaces/prod/dynamo_queue_depth").status_code == 200, timeout=40,
             what="recovered after Prometheus is back")
