"""The metrics server follows renewals of its serving certificate: when cert-manager (here: the
test) replaces the certificate and key files, new TLS connections get the new certificate
without a restart, and the API server's view of the server (health, authenticated reads) goes on."""

from __future__ import annotations

import os
import ssl

import grpc
import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from devcluster import certs
from external_metrics.keda_grpc import ExternalScalerClient
from external_metrics.proto import externalscaler_pb2 as pb
from helpers import wait_for
from support import MetricsServerProcess


def _served(port: int) -> bytes:
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))


def _der(path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def test_renewed_certificate_files_are_served_without_a_restart(prometheus, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    ca = certs.make_ca(d, "serving-ca", "metrics-serving-ca")
    serving = certs.issue(ca, d, "serving", "metrics", dns=("localhost",), ips=("127.0.0.1",), server=True)
    trust = ssl.create_default_context(cafile=str(ca.cert))
    server = MetricsServerProcess(tmp_path / "server", prometheus.url, "--authorization=none",
                                  f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
                                  http=False, grpc=False, ready_ssl=trust)
    try:
        first = _served(server.secure_port)
        assert first == _der(serving.cert)
        renewed = certs.issue(ca, d, "renewed", "metrics", dns=("localhost",), ips=("127.0.0.1",), server=True)
        # key first, then certificate: for a moment the pair does not match and must not be taken
        os.replace(renewed.key, serving.key)
        os.replace(renewed.cert, serving.cert)
        wait_for(lambda: _served(server.secure_port) != first, timeout=30, what="the renewed certificate served")
        assert _served(server.secure_port) == _der(serving.cert)
        with httpx.Client(verify=trust, timeout=5) as c:
            assert c.get(server.https_url + "/healthz").status_code == 200
        assert server.proc.poll() is None and "serving certificate reloaded" in server.log_tail()
    finally:
        server.stop()


def test_the_grpc_port_follows_renewals_too(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    ca = certs.make_ca(d, "serving-ca", "metrics-serving-ca")
    serving = certs.issue(ca, d, "serving", "metrics", dns=("localhost",), ips=("127.0.0.1",), server=True)
    # no Prometheus needed: GetMetricSpec answers from the trigger metadata alone
    server = MetricsServerProcess(tmp_path / "server", "http://127.0.0.1:9", "--authorization=none", "--grpc-tls",
                                  f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
                                  secure=False, http=True, grpc=True)
    try:
        def spec() -> float:
            creds = grpc.ssl_channel_credentials(ca.cert.read_bytes())
            with grpc.secure_channel(f"localhost:{server.grpc_port}", creds) as ch:
                ref = pb.ScaledObjectRef(namespace="ns1", scalerMetadata={"metric": "dynamo_queue_depth",
                                                                          "targetValue": "3"})
                return ExternalScalerClient(ch).GetMetricSpec(ref, timeout=10).metricSpecs[0].targetSizeFloat

        first = _served(server.grpc_port)
        assert first == _der(serving.cert) and spec() == 3.0
        renewed = certs.issue(ca, d, "renewed", "metrics", dns=("localhost",), ips=("127.0.0.1",), server=True)
        os.replace(renewed.key, serving.key)
        os.replace(renewed.cert, serving.cert)
        wait_for(lambda: _served(server.grpc_port) != first, timeout=30, what="the renewed certificate on gRPC")
        assert _served(server.grpc_port) == _der(serving.cert) and spec() == 3.0
    finally:
        server.stop()
