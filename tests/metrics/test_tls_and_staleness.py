"""TLS with front-proxy client-certificate authentication on the secure port, the KEDA bearer
token, and staleness: Prometheus down -> 503 (never a zero), back -> values again."""

from __future__ import annotations

import re
import ssl

import grpc
import httpx
import pytest
from cryptography import x509

from devcluster import certs
from external_metrics.keda_grpc import ExternalScalerClient
from external_metrics.proto import externalscaler_pb2 as pb
from helpers import wait_for
from support import MetricsServerProcess, dynamo_identity

BASE = "/apis/external.metrics.k8s.io/v1beta1"
TARGET = {"namespace": "ns1", "pod": "llm-decode-0", "component_type": "decode"}
QUEUE = [{"name": "vllm:num_requests_waiting", "labels": {"model_name": "m1"}, "value": 6},
         *dynamo_identity("ns1", "llm", "decode")]


@pytest.fixture()
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    serving_ca = certs.make_ca(d, "serving-ca", "metrics-serving-ca")
    fp_ca = certs.make_ca(d, "front-proxy-ca", "front-proxy-ca")
    rogue_ca = certs.make_ca(d, "rogue-ca", "rogue-ca")
    return {
        "serving_ca": serving_ca,
        "serving": certs.issue(serving_ca, d, "serving", "metrics", dns=("localhost",), ips=("127.0.0.1",), server=True),
        "front_proxy_ca": fp_ca,
        "front_proxy": certs.issue(fp_ca, d, "front-proxy-client", "front-proxy-client", client=True),
        "wrong_name": certs.issue(fp_ca, d, "intruder", "intruder", client=True),
        "rogue_ca": rogue_ca,
        "rogue": certs.issue(rogue_ca, d, "rogue-front-proxy", "front-proxy-client", client=True),
    }


def _client(pki, cert: str | None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(pki["serving_ca"].cert))
    if cert:
        ctx.load_cert_chain(str(pki[cert].cert), str(pki[cert].key))
    return httpx.Client(verify=ctx, timeout=5)


def test_secure_port_requires_the_front_proxy_certificate(prometheus, exporters, pki, tmp_path):
    exp = exporters()
    exp.set(QUEUE)
    prometheus.set_targets("decode", [(exp.address, TARGET)])
    prometheus.wait_for_targets("decode", 1)
    ready_ctx = ssl.create_default_context(cafile=str(pki["serving_ca"].cert))
    server = MetricsServerProcess(
        tmp_path / "server", prometheus.url, "--interval=0.5", "--staleness=5", "--authorization=none",
        f"--tls-cert-file={pki['serving'].cert}", f"--tls-private-key-file={pki['serving'].key}",
        f"--requestheader-client-ca-file={pki['front_proxy_ca'].cert}",
        "--requestheader-allowed-names=front-proxy-client", http=False, grpc=False, ready_ssl=ready_ctx,
        env={"DYNAMO_METRICS_KEDA_TOKEN": "s3cret"})
    try:
        url = f"{server.https_url}{BASE}/namespaces/ns1/dynamo_queue_depth?labelSelector=service%3Ddecode"
        user = {"X-Remote-User": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                "X-Remote-Group": "system:serviceaccounts"}
        with _client(pki, "front_proxy") as c:
            r = wait_for(lambda: (r := c.get(url, headers=user)).status_code == 200 and r, what="authenticated read")
            assert r.json()["items"][0]["value"] == "6"
            assert c.get(server.https_url + BASE, headers=user).status_code == 200
            no_user = c.get(url)
            assert no_user.status_code == 401 and "X-Remote-User" in no_user.json()["message"]
        with _client(pki, None) as c:
            r = c.get(url, headers=user)
            assert r.status_code == 401 and r.json()["kind"] == "Status" and r.json()["reason"] == "Unauthorized"
            assert c.get(server.https_url + BASE).status_code == 401
            assert c.get(server.https_url + "/metrics").status_code == 401
            # health needs no identity (kubelet probes)
            assert c.get(server.https_url + "/healthz").status_code == 200
            assert c.get(server.https_url + "/readyz").status_code == 200
            # KEDA's endpoint takes the bearer token (or X-API-KEY) instead
            keda = f"{server.https_url}/keda/v1/ns1/dynamo_queue_depth?selector=service%3Ddecode"
            assert c.get(keda).status_code == 401
            assert c.get(keda, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get(keda, headers={"Authorization": "Bearer s3cret"}).json()["value"] == 6
            assert c.get(keda, headers={"X-API-KEY": "s3cret"}).status_code == 200
        with _client(pki, "wrong_name") as c:
            r = c.get(url, headers=user)
            assert r.status_code == 401 and "not an allowed requestheader name" in r.json()["message"]
        with _client(pki, "rogue") as c:  # a certificate from another CA fails the handshake
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                c.get(url, headers=user)
        with httpx.Client(timeout=5) as c:  # plain HTTP on the TLS port gets nothing
            try:
                refused = c.get(f"http://127.0.0.1:{server.secure_port}{BASE}").status_code >= 400
            except httpx.HTTPError:
                refused = True
            assert refused
    finally:
        server.stop()


def test_front_proxy_ca_rotation_is_followed(prometheus, exporters, pki, tmp_path):
    """The CA file changes under a running server: the new CA's client is let in, the retired
    CA's client is refused (the TLS layer may still know the old CA; the server does not trust it)."""
    exp = exporters()
    exp.set(QUEUE)
    prometheus.set_targets("decode", [(exp.address, TARGET)])
    ca_file = tmp_path / "requestheader-ca.pem"
    ca_file.write_bytes(pki["front_proxy_ca"].cert.read_bytes())
    server = MetricsServerProcess(
        tmp_path / "server", prometheus.url, "--interval=0.5", "--staleness=5", "--authorization=none",
        f"--tls-cert-file={pki['serving'].cert}", f"--tls-private-key-file={pki['serving'].key}",
        f"--requestheader-client-ca-file={ca_file}", "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-refresh=0.5", http=False, grpc=False,
        ready_ssl=ssl.create_default_context(cafile=str(pki["serving_ca"].cert)))
    url = f"{server.https_url}{BASE}/namespaces/ns1/dynamo_queue_depth?labelSelector=service%3Ddecode"
    user = {"X-Remote-User": "system:serviceaccount:kube-system:horizontal-pod-autoscaler"}

    def status(cert: str) -> int | str:
        with _client(pki, cert) as c:
            try:
                return c.get(url, headers=user).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__

    try:
        wait_for(lambda: status("front_proxy") == 200, what="old CA accepted")
        assert status("rogue") != 200
        ca_file.write_bytes(pki["rogue_ca"].cert.read_bytes())  # rotate to another CA
        wait_for(lambda: status("rogue") == 200, timeout=15, what="new CA accepted")
        assert status("front_proxy") == 401
        assert "requestheader CA or names changed" in server.log_tail()
    finally:
        server.stop()


def test_self_signed_certificate_when_none_is_given(prometheus, tmp_path):
    server = MetricsServerProcess(tmp_path / "server", prometheus.url, "--authorization=none",
                                  "--tls-sans=metrics.dynamo-scaling.svc", http=False, grpc=False)
    try:
        pem = ssl.get_server_certificate(("127.0.0.1", server.secure_port))
        san = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert {"localhost", "metrics.dynamo-scaling.svc"} <= set(san.get_values_for_type(x509.DNSName))
        # no requestheader CA configured: everything but health is refused
        with httpx.Client(verify=False, timeout=5) as c:
            assert c.get(f"{server.https_url}{BASE}").status_code == 401
            assert c.get(f"{server.https_url}/healthz").status_code == 200
    finally:
        server.stop()


def test_bad_flags_fail_fast(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "metrics-server", "--interval=10", "--staleness=5"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--staleness" in r.stderr
    r = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "metrics-server", "--secure-port=0",
                        "--grpc-port=0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "every listener is off" in r.stderr


def test_prometheus_down_gives_503_then_recovers(prometheus, exporters, tmp_path):
    exp = exporters()
    exp.set(QUEUE)
    prometheus.set_targets("decode", [(exp.address, TARGET)])
    prometheus.wait_for_targets("decode", 1)
    server = MetricsServerProcess(tmp_path / "server", prometheus.url, "--interval=0.5", "--staleness=2",
                                  "--prometheus-timeout=0.5", "--http-serves-api", secure=False)
    url = f"{server.http_url}{BASE}/namespaces/ns1/dynamo_queue_depth?labelSelector=service%3Ddecode"
    ref = pb.ScaledObjectRef(namespace="ns1", scalerMetadata={"metric": "dynamo_queue_depth", "service": "decode"})
    try:
        with httpx.Client(timeout=5) as c, grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            scaler = ExternalScalerClient(ch)
            wait_for(lambda: c.get(url).status_code == 200, what="first value")
            assert c.get(url).json()["items"][0]["value"] == "6"
            prometheus.stop()
            r = wait_for(lambda: (r := c.get(url)).status_code == 503 and r, timeout=30, interval=0.1,
                         what="503 after Prometheus stopped")
            body = r.json()
            # it turned stale by its own clock only once the data was older than the bound (2 s)
            age = re.search(r"is (\d+) s old \(staleness bound 2 s\)", body["message"])
            assert age and int(age.group(1)) >= 2, body["message"]
            assert body["kind"] == "Status" and body["reason"] == "ServiceUnavailable" and body["code"] == 503
            assert "staleness bound" in body["message"] and "unreachable" in body["message"]
            assert c.get(f"{server.http_url}/keda/v1/ns1/dynamo_queue_depth?selector=service%3Ddecode").status_code == 503
            with pytest.raises(grpc.RpcError) as err:
                scaler.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.RpcError):
                scaler.IsActive(ref, timeout=5)
            # the server stays up and ready (it answers with proper errors), and says what is stale
            ready = c.get(f"{server.http_url}/readyz")
            assert ready.status_code == 200 and "unavailable" in ready.text
            assert 'dynamo_metrics_server_cache_fresh{signal="dynamo_queue_depth"} 0.0' in c.get(
                f"{server.http_url}/metrics").text
            prometheus.start()
            r = wait_for(lambda: (r := c.get(url)).status_code == 200 and r, timeout=20, what="recovery")
            assert r.json()["items"][0]["value"] == "6"
            assert scaler.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=5).metricValues[0].metricValueFloat == 6
    finally:
        assert server.stop() == 0, server.log_tail()


def test_grpc_over_tls_with_client_certificates(pki, tmp_path):
    # no Prometheus needed: GetMetricSpec answers from the trigger metadata alone
    dead = "http://127.0.0.1:9"
    server = MetricsServerProcess(
        tmp_path / "server", dead, "--authorization=none", "--grpc-tls",
        f"--grpc-client-ca-file={pki['front_proxy_ca'].cert}",
        f"--tls-cert-file={pki['serving'].cert}", f"--tls-private-key-file={pki['serving'].key}",
        secure=False, http=True, grpc=True)
    ref = pb.ScaledObjectRef(namespace="ns1", scalerMetadata={"metric": "dynamo_queue_depth", "targetValue": "4"})
    try:
        root = pki["serving_ca"].cert.read_bytes()
        good = grpc.ssl_channel_credentials(root, pki["front_proxy"].key.read_bytes(), pki["front_proxy"].cert.read_bytes())
        with grpc.secure_channel(f"localhost:{server.grpc_port}", good) as ch:
            spec = ExternalScalerClient(ch).GetMetricSpec(ref, timeout=10).metricSpecs[0]
            assert spec.targetSizeFloat == 4.0
            # no data yet (Prometheus unreachable): an error, not a zero
            with pytest.raises(grpc.RpcError) as err:
                ExternalScalerClient(ch).GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.secure_channel(f"localhost:{server.grpc_port}", grpc.ssl_channel_credentials(root)) as ch:
            with pytest.raises(grpc.RpcError) as err:
                ExternalScalerClient(ch).GetMetricSpec(ref, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused without a client cert
    finally:
        server.stop()
