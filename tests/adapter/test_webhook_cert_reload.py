"""The adapter's webhook server picks up a renewed serving certificate (cert-manager rewrites the
mounted Secret in place) without a restart: a real TLS handshake sees the new certificate."""

from __future__ import annotations

import shutil
import socket
import ssl

from helpers import wait_for

from adapter import webhook
from devcluster import certs
from devcluster.procs import free_port


def served_cert(port: int, ca_file) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.getpeercert(binary_form=True)


def der(pem_path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def test_renewed_certificate_is_served_without_restart(tmp_path):
    ca = certs.make_ca(tmp_path, "ca", "webhook-ca")
    first = certs.issue(ca, tmp_path, "first", "adapter", dns=("localhost",), server=True)
    renewed = certs.issue(ca, tmp_path, "renewed", "adapter", dns=("localhost",), server=True)
    live = tmp_path / "mounted"
    live.mkdir()
    crt, key = live / "tls.crt", live / "tls.key"
    shutil.copy(first.cert, crt)
    shutil.copy(first.key, key)
    port = free_port()
    server = webhook.serve("127.0.0.1", port, crt, key, validator=None)
    try:
        assert served_cert(port, ca.cert) == der(first.cert)
        # key first, then the certificate: a half-renewed pair must not break serving
        shutil.copy(renewed.key, key)
        shutil.copy(renewed.cert, crt)
        wait_for(lambda: served_cert(port, ca.cert) == der(renewed.cert), timeout=4 * webhook.RELOAD_PERIOD_S,
                 what="renewed certificate served")
    finally:
        server.shutdown()
        server.server_close()
