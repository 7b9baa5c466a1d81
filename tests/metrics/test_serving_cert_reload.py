"""The metrics server follows renewals of its serving certificate: when cert-manager (here: the
test) replaces the certificate and key files, new TLS connections get the new certificate
without a restart, and the API server's view of the server (health, authenticated reads) goes on."""

from __future__ import annotations

import os
import ssl

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from devcluster import certs
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
