"""The metrics server as a real process against a real Prometheus scraping exporter processes
that serve Dynamo's metric names: exact values, label filtering, errors, KEDA JSON (GJSON
paths) and the KEDA external scaler over real gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import gjson
import grpc
import pytest
import yaml

from devcluster.prometheus import Prometheus
from external_metrics.keda_grpc import ExternalScalerClient
from external_metrics.prom import PrometheusClient, read_signal
from external_metrics.proto import externalscaler_pb2 as pb
from external_metrics.quantity import parse_quantity
from external_metrics.signals import SignalMapping
from helpers import wait_for
from support import Exporter, MetricsServerProcess, dynamo_identity

BASE = "/apis/external.metrics.k8s.io/v1beta1"
BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
# Dynamo's components reported under the DGD's service names (the default signal mapping)
SERVICES = {"backend": "decode", "frontend": "Frontend"}
MAPPING = SignalMapping.from_overrides({"services": SERVICES})


def target(ns: str, dgd: str, service: str, pod: str, ctype: str) -> dict[str, str]:
    """A pod's target; Prometheus keeps only what a stock PodMonitor gives (no dgd, service)."""
    return {"namespace": ns, "dgd": dgd, "service": service, "pod": pod, "component_type": ctype}


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Namespace ns1, DGD llm: a frontend, two decode workers (mocker-style vllm:* gauges), one
    prefill worker (dynamo_component_kvstats_*); namespace ns2, DGD other: a frontend. Each pod
    also exports the series Dynamo identifies it by; the server maps `backend` to `decode`."""
    work = tmp_path_factory.mktemp("deployment")
    procs: list = []
    prom = Prometheus(work / "prometheus").start()
    try:
        fe, d0, d1, pf, fe2 = (Exporter(work / "exp") for _ in range(5))
        procs += [fe, d0, d1, pf, fe2]
        fe.set([
            {"name": "dynamo_frontend_queued_requests", "labels": {"model": "m1"}, "value": 3},
            {"name": "dynamo_frontend_inflight_requests", "labels": {"model": "m1"}, "value": 10},
            {"name": "dynamo_frontend_active_requests", "labels": {"model": "m1"}, "value": 7},
            {"name": "dynamo_frontend_requests", "type": "counter",
             "labels": {"model": "m1", "endpoint": "chat_completions", "request_type": "stream", "status": "success"},
             "value": 100},
            {"name": "dynamo_frontend_time_to_first_token_seconds", "type": "histogram", "labels": {"model": "m1"},
             "buckets": BUCKETS, "observations": [0.2] * 1000},
            *dynamo_identity("ns1", "llm", "frontend"),
        ])
        d0.set([{"name": "vllm:kv_cache_usage_perc", "labels": {"model_name": "m1"}, "value": 0.25},
                {"name": "vllm:num_requests_waiting", "labels": {"model_name": "m1"}, "value": 2},
                {"name": "vllm:num_requests_running", "labels": {"model_name": "m1"}, "value": 4},
                *dynamo_identity("ns1", "llm", "backend")])
        d1.set([{"name": "vllm:kv_cache_usage_perc", "labels": {"model_name": "m1"}, "value": 0.75},
                {"name": "vllm:num_requests_waiting", "labels": {"model_name": "m1"}, "value": 5},
                {"name": "vllm:num_requests_running", "labels": {"model_name": "m1"}, "value": 6},
                *dynamo_identity("ns1", "llm", "backend")])
        pf.set([{"name": "dynamo_component_kvstats_active_blocks", "labels": {"model": "m1"}, "value": 30},
                {"name": "dynamo_component_kvstats_total_blocks", "labels": {"model": "m1"}, "value": 100},
                {"name": "dynamo_component_kvstats_gpu_cache_usage_percent", "labels": {"model": "m1"}, "value": 0.3},
                {"name": "dynamo_component_num_requests_waiting", "labels": {"model": "m1"}, "value": 4},
                *dynamo_identity("ns1", "llm", "prefill")])
        fe2.set([{"name": "dynamo_frontend_queued_requests", "labels": {"model": "m2"}, "value": 11},
                 *dynamo_identity("ns2", "other", "frontend")])
        prom.set_targets("frontend", [(fe.address, target("ns1", "llm", "Frontend", "llm-frontend-0", "frontend")),
                                      (fe2.address, target("ns2", "other", "Frontend", "other-fe-0", "frontend"))])
        prom.set_targets("decode", [(d0.address, target("ns1", "llm", "decode", "llm-decode-0", "decode")),
                                    (d1.address, target("ns1", "llm", "decode", "llm-decode-1", "decode"))])
        prom.set_targets("prefill", [(pf.address, target("ns1", "llm", "prefill", "llm-prefill-0", "prefill"))])
        for job, n in (("frontend", 2), ("decode", 2), ("prefill", 1)):
            prom.wait_for_targets(job, n)
        signals = work / "signals.yaml"
        signals.write_text(yaml.safe_dump({"services": SERVICES}))
        server = MetricsServerProcess(work / "server", prom.url, "--interval=0.5", "--staleness=5", "--window=30s",
                                      f"--signals-file={signals}",
                                      "--authorization=none", "--http-serves-api", secure=False)
        procs.append(server)

        def value(metric: str, selector: str, ns: str = "ns1"):
            q = urllib.parse.urlencode({"labelSelector": selector})
            code, body = get(f"{server.http_url}{BASE}/namespaces/{ns}/{metric}?{q}")
            return body["items"] if code == 200 else None

        # histograms need two scrapes for a rate, queue gauges one: wait for the server to see them
        wait_for(lambda: value("dynamo_queue_depth", "service=prefill"), what="queue depth in the cache")
        yield prom, server, (fe, d0, d1, pf, fe2), value
    finally:
        for p in procs:
            p.stop()
        prom.stop()


def test_discovery_lists_every_signal(deployment):
    _, server, _, _ = deployment
    code, body = get(server.http_url + BASE)
    assert code == 200 and body["kind"] == "APIResourceList" and body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    names = {r["name"] for r in body["resources"]}
    assert {"dynamo_queue_depth", "dynamo_kv_cache_usage", "dynamo_kv_cache_usage_max", "dynamo_kv_active_blocks",
            "dynamo_inflight_requests", "dynamo_ttft_seconds", "dynamo_ttft_seconds_p95", "dynamo_itl_seconds",
            "dynamo_itl_seconds_p95", "dynamo_request_rate"} <= names
    assert all(r["namespaced"] and r["verbs"] == ["get"] and r["kind"] == "ExternalMetricValueList"
               for r in body["resources"])
    code, groups = get(server.http_url + "/apis")
    assert code == 200 and groups["groups"][0]["name"] == "external.metrics.k8s.io"
    code, openapi = get(server.http_url + "/openapi/v2")
    assert code == 200 and openapi["swagger"] == "2.0"


def test_values_labels_and_filtering(deployment):
    _, server, _, value = deployment
    items = value("dynamo_queue_depth", "dgd=llm,service=decode")
    assert len(items) == 1
    item = items[0]
    assert item["metricName"] == "dynamo_queue_depth" and item["value"] == "7"
    assert item["metricLabels"] == {"dgd": "llm", "service": "decode", "dynamo_namespace": "ns1_llm", "model": "m1"}
    assert item["timestamp"].endswith("Z") and "window" not in item
    assert value("dynamo_queue_depth", "service=Frontend")[0]["value"] == "3"
    assert value("dynamo_queue_depth", "service=prefill")[0]["value"] == "4"
    both = value("dynamo_queue_depth", "service in (decode,prefill)")
    assert sorted(i["metricLabels"]["service"] for i in both) == ["decode", "prefill"]
    assert {i["metricLabels"]["service"] for i in value("dynamo_queue_depth", "")} == {"Frontend", "decode", "prefill"}
    assert {i["metricLabels"]["service"] for i in value("dynamo_queue_depth", "service notin (decode)")} == \
        {"Frontend", "prefill"}
    # KV cache: mocker gauges (decode) and kvstats blocks (prefill)
    assert value("dynamo_kv_cache_usage", "service=decode")[0]["value"] == "500m"
    assert value("dynamo_kv_cache_usage_max", "service=decode")[0]["value"] == "750m"
    assert value("dynamo_kv_cache_usage_sum", "service=decode")[0]["value"] == "1"
    assert value("dynamo_kv_cache_usage", "service=prefill")[0]["value"] == "300m"
    assert value("dynamo_kv_active_blocks", "service=prefill")[0]["value"] == "30"
    assert value("dynamo_inflight_requests", "service=Frontend")[0]["value"] == "10"
    assert value("dynamo_inflight_requests", "service=decode")[0]["value"] == "17"
    # the other namespace is separate
    assert value("dynamo_queue_depth", "dgd=other", ns="ns2")[0]["value"] == "11"
    assert value("dynamo_queue_depth", "dgd=other", ns="ns1") is None


def test_histogram_signals_over_the_window(deployment):
    _, _, (fe, *_), value = deployment
    hist = {"name": "dynamo_frontend_time_to_first_token_seconds", "type": "histogram", "labels": {"model": "m1"},
            "buckets": BUCKETS}
    fe.set([{"name": "dynamo_frontend_queued_requests", "labels": {"model": "m1"}, "value": 3},
            {"name": "dynamo_frontend_requests", "type": "counter", "labels": {"model": "m1"}, "value": 100},
            {**hist, "observations": [0.2] * 1000}, *dynamo_identity("ns1", "llm", "frontend")])
    wait_for(lambda: value("dynamo_queue_depth", "service=Frontend"), what="frontend")
    # 20 more requests, all with TTFT 0.4 s: the window mean over the new ones is 0.4 s
    fe.set([{"name": "dynamo_frontend_queued_requests", "labels": {"model": "m1"}, "value": 3},
            {"name": "dynamo_frontend_requests", "type": "counter", "labels": {"model": "m1"}, "value": 120},
            {**hist, "observations": [0.2] * 1000 + [0.4] * 20}, *dynamo_identity("ns1", "llm", "frontend")])
    items = wait_for(lambda: value("dynamo_ttft_seconds", "service=Frontend"), what="ttft")
    assert items[0]["value"] == "400m" and items[0]["window"] == 30
    p95 = wait_for(lambda: value("dynamo_ttft_seconds_p95", "service=Frontend"), what="p95")
    # all 20 new observations fall in the (0.25, 0.5] bucket: linear interpolation gives 0.4875
    assert parse_quantity(p95[0]["value"]) == pytest.approx(0.4875)
    rate = wait_for(lambda: value("dynamo_request_rate", "service=Frontend"), what="rate")
    assert rate[0]["window"] == 30 and not rate[0]["value"].startswith("-")


@pytest.mark.parametrize("path,code,reason,fragment", [
    ("/namespaces/ns1/no_such_metric", 404, "NotFound", "not served here"),
    ("/namespaces/ns1/dynamo_queue_depth?labelSelector=service%3D%3D%3Dx", 400, "BadRequest", "invalid label selector"),
    ("/namespaces/ns1/dynamo_queue_depth?labelSelector=service+in+(a", 400, "BadRequest", "missing ')'"),
    ("/namespaces/Bad_NS/dynamo_queue_depth", 400, "BadRequest", "not a valid namespace"),
    ("/namespaces/ns-without-series/dynamo_queue_depth", 404, "NotFound", "no series"),
    ("/namespaces/ns1/dynamo_queue_depth?labelSelector=dgd%3Dnope", 404, "NotFound", "match"),
    ("/namespaces/ns1/dynamo_queue_depth?labelSelector=" + "a%3Db%2C" * 600 + "a%3Db", 400, "BadRequest", "more than 64"),
    ("/namespaces/ns1/dynamo_queue_depth?labelSelector=" + "x" * 9000, 414, "RequestURITooLong", "query string"),
    ("/nonsense", 404, "NotFound", "use /apis"),
])
def test_errors_are_metav1_status(deployment, path, code, reason, fragment):
    _, server, _, _ = deployment
    got, body = get(server.http_url + BASE + path)
    assert got == code, body
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason and fragment in body["message"]


def test_keda_json_with_gjson_paths(deployment):
    _, server, _, _ = deployment
    code, body = get(f"{server.http_url}/keda/v1/ns1/dynamo_queue_depth?selector=dgd%3Dllm%2Cservice%20in%20(decode%2Cprefill)")
    assert code == 200
    assert gjson.get(body, "value") == 11  # sum, what an AverageValue target divides
    assert gjson.get(body, "max") == 7 and gjson.get(body, "min") == 4 and gjson.get(body, "count") == 2
    assert gjson.get(body, 'items.#(service=="decode").value') == 7
    assert gjson.get(body, 'items.#(service=="prefill").model') == "m1"
    assert sorted(gjson.get(body, "items.#.value")) == [4, 7]
    code, err = get(f"{server.http_url}/keda/v1/ns1/nope")
    assert code == 404 and err["reason"] == "NotFound"
    code, err = get(f"{server.http_url}/keda/v1/ns1/dynamo_queue_depth?selector=a%3D%3D%3D")
    assert code == 400


def test_own_metrics(deployment):
    _, server, _, _ = deployment
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'dynamo_metrics_server_cache_age_seconds{signal="dynamo_queue_depth"}' in text
    assert "dynamo_metrics_server_request_duration_seconds_bucket" in text
    assert 'dynamo_metrics_server_prometheus_query_duration_seconds_count{signal="dynamo_queue_depth"}' in text


def test_external_scaler_over_grpc(deployment):
    _, server, _, _ = deployment
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        c = ExternalScalerClient(ch)
        ref = pb.ScaledObjectRef(name="so", namespace="ns1", scalerMetadata={
            "metric": "dynamo_queue_depth", "dgd": "llm", "service": "decode", "targetValue": "2.5"})
        spec = c.GetMetricSpec(ref, timeout=5).metricSpecs[0]
        assert spec.metricName == "dynamo_queue_depth" and spec.targetSizeFloat == 2.5 and spec.targetSize == 2
        mv = c.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName="s0-dynamo_queue_depth"),
                          timeout=5).metricValues[0]
        assert mv.metricName == "s0-dynamo_queue_depth" and mv.metricValueFloat == 7.0 and mv.metricValue == 7
        assert c.IsActive(ref, timeout=5).result is True
        idle = pb.ScaledObjectRef(namespace="ns1", scalerMetadata={**ref.scalerMetadata, "activationTargetValue": "10"})
        assert c.IsActive(idle, timeout=5).result is False
        kv = pb.ScaledObjectRef(namespace="ns1", scalerMetadata={
            "metric": "dynamo_kv_cache_usage", "selector": "service in (decode,prefill)", "aggregate": "max"})
        assert c.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=kv), timeout=5).metricValues[0].metricValueFloat == 0.5
        stream = c.StreamIsActive(ref, timeout=5)
        assert next(stream).result is True
        stream.cancel()
        # the deployment's frontend in ns2 is there, but a ScaledObject in ns1 cannot read it
        other = {"metric": "dynamo_queue_depth", "namespace": "ns2"}
        with pytest.raises(grpc.RpcError) as err:
            c.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=pb.ScaledObjectRef(namespace="ns1", scalerMetadata=other)),
                         timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "ns2" in err.value.details()
        same = c.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=pb.ScaledObjectRef(namespace="ns2", scalerMetadata=other)),
                            timeout=5)
        assert same.metricValues[0].metricValueFloat == 11.0
        for meta, code in ((({"metric": "nope"}), grpc.StatusCode.NOT_FOUND),
                           ({"metric": "dynamo_queue_depth", "selector": "a in ("}, grpc.StatusCode.INVALID_ARGUMENT),
                           ({"metric": "dynamo_queue_depth", "dgd": "missing"}, grpc.StatusCode.NOT_FOUND),
                           ({}, grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as err:
                c.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=pb.ScaledObjectRef(
                    namespace="ns1", scalerMetadata=meta)), timeout=5)
            assert err.value.code() == code


def test_planner_reads_signals_with_the_same_mapping(deployment):
    prom, _, _, _ = deployment
    with PrometheusClient(prom.url) as client:
        vals = read_signal(client, MAPPING, "dynamo_kv_cache_usage", {"namespace": "ns1", "dgd": "llm"})
    by_service = {v.labels["service"]: v.value for v in vals}
    assert by_service == {"decode": pytest.approx(0.5), "prefill": pytest.approx(0.3)}


def test_plain_http_serves_only_probes_and_metrics_unless_opened(tmp_path):
    # the port authenticates nobody: the API stays on the TLS port unless --http-serves-api
    server = MetricsServerProcess(tmp_path / "server", "http://127.0.0.1:9", "--authorization=none",
                                  secure=False, grpc=False)
    try:
        for path in (f"{BASE}/namespaces/ns1/dynamo_queue_depth", BASE, "/apis", "/openapi/v2",
                     "/keda/v1/ns1/dynamo_queue_depth", "/anything"):
            code, body = get(server.http_url + path)
            assert code == 403 and "--http-serves-api" in body["message"], (path, code, body)
        for path in ("/metrics", "/healthz", "/livez"):
            with urllib.request.urlopen(server.http_url + path, timeout=5) as r:
                assert r.status == 200, path
    finally:
        server.stop()


@pytest.mark.parametrize("flags, message", [
    (["--bind-address=0.0.0.0", "--grpc-port=6000"], "--grpc-client-ca-file"),
    (["--bind-address=0.0.0.0", "--grpc-port=6000", "--grpc-tls"], "--grpc-client-ca-file"),
])
def test_grpc_beyond_loopback_needs_client_certificates(flags, message):
    # the external scaler authenticates callers only by TLS client certificates
    r = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "metrics-server", "--secure-port=0",
                        "--http-port=0", *flags], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr and "--grpc-insecure" in r.stderr, r.stderr


def test_grpc_insecure_is_an_explicit_choice():
    from external_metrics.settings import Settings

    s = Settings(bind_address="0.0.0.0", grpc_port=6000, secure_port=0, grpc_insecure=True)
    assert s.grpc_insecure and Settings(grpc_port=6000).bind_address == "127.0.0.1"  # loopback needs nothing
