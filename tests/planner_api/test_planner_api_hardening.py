"""The planner's API is safe to expose: a real `dynamo-scaling planner` process serves HTTPS (a
given certificate, re-read when the files change, or a self-signed one), plain HTTP only behind
--insecure-http; request bodies are capped before authentication; the OpenAPI documents are off
unless asked for and then need a token; an override past the planner's max_* or GPU budget needs
the separate `override-limits` verb, checked by the real API server's SubjectAccessReview."""

from __future__ import annotations

import os
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from helpers import wait_for
from planner_process import PlannerProcess
from test_planner_auth_live import binding, planner_role

from devcluster.certs import issue
from planner_support import TOKEN

pytestmark = pytest.mark.cluster
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NO_PROMETHEUS = "http://127.0.0.1:9"  # these tests are about the API, not about planning


def _planner(cluster, namespace, tmp_path, tls="files", extra=(), planner=None, token=True) -> PlannerProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if token:
        (tmp_path / "token").write_text(TOKEN)
    return PlannerProcess(cluster.kubeconfig, namespace, NO_PROMETHEUS, tmp_path, planner=planner,
                          token_file=tmp_path / "token" if token else None, tls=tls, extra=tuple(extra)).start()


def _served_cert(port: int) -> bytes:
    """DER of the certificate a new TLS connection to 127.0.0.1:`port` is given."""
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))


def _der(path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def test_https_by_default_and_plain_http_only_when_asked(cluster, namespace, tmp_path):
    planner = _planner(cluster, namespace, tmp_path / "self-signed", tls="self-signed")
    try:
        port = planner.port
        cert = x509.load_der_x509_certificate(_served_cert(port))
        assert cert.subject.rfc4514_string() == "CN=dynamo-scaling-planner"
        assert httpx.get(planner.url + "/v1/status", headers=AUTH, verify=False, timeout=5).status_code == 200
        # the same port does not speak plain HTTP
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/v1/status", headers=AUTH, timeout=5)
    finally:
        planner.stop()

    planner = _planner(cluster, namespace, tmp_path / "plain", tls="off")
    try:
        assert httpx.get(planner.url + "/v1/status", headers=AUTH, timeout=5).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://127.0.0.1:{planner.port}/healthz", verify=False, timeout=5)
    finally:
        planner.stop()


def test_renewed_certificate_files_are_served_without_a_restart(cluster, namespace, tmp_path):
    planner = _planner(cluster, namespace, tmp_path)
    try:
        with httpx.Client(verify=planner.verify, timeout=5) as c:
            assert c.get(planner.url + "/healthz").status_code == 200
        first = _served_cert(planner.port)
        assert first == _der(planner.serving.cert)
        # renewal as cert-manager does it: a new key and certificate from the same CA, files replaced
        renewed = issue(planner.ca, tmp_path / "pki", "renewed", "planner", dns=("localhost",), ips=("127.0.0.1",),
                        server=True)
        os.replace(renewed.key, planner.serving.key)
        os.replace(renewed.cert, planner.serving.cert)
        wait_for(lambda: _served_cert(planner.port) != first, timeout=30, what="the renewed certificate served")
        assert _served_cert(planner.port) == _der(planner.serving.cert)
        with httpx.Client(verify=planner.verify, timeout=5) as c:
            assert c.get(planner.url + "/v1/status", headers=AUTH).status_code == 200
        assert planner.proc.poll() is None
    finally:
        planner.stop()


def test_bodies_are_capped_before_authentication_and_parsing(cluster, namespace, tmp_path):
    planner = _planner(cluster, namespace, tmp_path, extra=["--max-body-bytes=4096"])
    big = b'{"ttft_ms": 300, "itl_ms": 20, "pad": "' + b"x" * 8192 + b'"}'
    try:
        with httpx.Client(base_url=planner.url, verify=planner.verify, timeout=10) as c:
            # no token at all: the size is refused first, so nothing was parsed or reviewed
            r = c.put("/v1/sla", content=big, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, r.text
            assert "4096" in r.json()["error"]
            # no Content-Length (chunked): counted as it arrives
            def chunks():
                for _ in range(16):
                    yield b" " * 1024
            r = c.put("/v1/sla", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
            assert r.status_code == 413, r.text
            # within the cap the body reaches authentication and validation as before
            small = b'{"replicas": 1, "reason": "' + b"y" * 1000 + b'"}'
            assert c.put("/v1/overrides/decode", content=small,
                         headers={"Content-Type": "application/json"}).status_code == 401
            r = c.put("/v1/overrides/decode", content=small, headers={**AUTH, "Content-Type": "application/json"})
            assert r.status_code == 422 and "reason" in r.text
            assert c.get("/v1/status", headers=AUTH).json()["sla"] != {"ttft_ms": 300, "itl_ms": 20}
    finally:
        planner.stop()


def test_api_documents_are_off_by_default_and_need_a_token_when_on(cluster, namespace, tmp_path):
    planner = _planner(cluster, namespace, tmp_path / "default")
    try:
        with httpx.Client(base_url=planner.url, verify=planner.verify, timeout=5, headers=AUTH) as c:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert c.get(path).status_code == 404, path
    finally:
        planner.stop()
    planner = _planner(cluster, namespace, tmp_path / "docs", extra=["--api-docs"])
    try:
        with httpx.Client(base_url=planner.url, verify=planner.verify, timeout=5) as c:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert c.get(path).status_code == 401, path
                assert c.get(path, headers=AUTH).status_code == 200, path
            assert "/v1/overrides/{svc}" in c.get("/openapi.json", headers=AUTH).json()["paths"]
    finally:
        planner.stop()


def test_overrides_past_the_limits_need_the_override_limits_verb(cluster, kubectl, namespace, tmp_path):
    callers = ("operator", "admin")
    kubectl.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}} for sa in callers]
                  + [planner_role("llama-edit", ["get", "update"], "llama"), binding("llama-edit", "operator"),
                     binding("llama-edit", "admin"),
                     planner_role("llama-limits", ["override-limits"], "llama"), binding("llama-limits", "admin")],
                  namespace)
    auth = {sa: {"Authorization": "Bearer " + kubectl("-n", namespace, "create", "token", sa, "--duration=10m").strip()}
            for sa in callers}
    planner = _planner(cluster, namespace, tmp_path, token=False,
                       planner={"max_decode": 4, "max_prefill": 8, "min_prefill": 1, "min_decode": 1,
                                "gpu_budget": 6})
    try:
        with httpx.Client(base_url=planner.url, verify=planner.verify, timeout=10) as c:
            def put(who: str, svc: str, body: dict) -> httpx.Response:
                return c.put(f"/v1/overrides/{svc}", json=body, headers=auth[who])

            # within max_decode and the budget (3 + prefill's minimum 1 <= 6): update is enough
            assert put("operator", "decode", {"replicas": 3}).status_code == 200
            # above max_decode, pinned or as a floor: refused, naming the verb that would allow it
            for body in ({"replicas": 5}, {"min_replicas": 5}):
                r = put("operator", "decode", body)
                assert r.status_code == 403, r.text
                assert "override-limits" in r.json()["error"] and "maximum of 4" in r.json()["error"], r.text
            # a bound that only lowers is no excess
            assert put("operator", "decode", {"max_replicas": 10}).status_code == 200
            assert put("operator", "decode", {"replicas": 3}).status_code == 200
            # within max_prefill but over the GPU budget together with decode's 3
            r = put("operator", "prefill", {"min_replicas": 4})
            assert r.status_code == 403 and "GPU budget of 6" in r.json()["error"], r.text
            # the verb lets it through, recorded under the caller's name
            r = put("admin", "decode", {"replicas": 5})
            assert r.status_code == 200, r.text
            assert r.json()["set_by"] == f"system:serviceaccount:{namespace}:admin"
            status = c.get("/v1/status", headers=auth["operator"]).json()
            assert status["overrides"]["decode"]["replicas"] == 5 and "prefill" not in status["overrides"]
    finally:
        planner.stop()
