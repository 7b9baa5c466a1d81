"""The chart serves the planner's REST API over TLS: the certificate it generates is the one a
real planner process serves and that verifies for the Service's DNS name, probes use HTTPS, the
Secret is mounted so that renewals reach the files, and plain HTTP only with insecureHttp."""

from __future__ import annotations

import base64
import socket
import ssl
import sys
from pathlib import Path

import httpx
import pytest
from helm_chart_helpers import find, one

PLANNER = {"planner.enabled": "true", "planner.deployment.name": "llama"}
NAME = "ds-dynamo-scaling-planner"


def test_planner_serves_tls_with_the_chart_certificate_and_probes_use_https(render):
    docs = render.docs(sets=PLANNER)
    dep = one(docs, "Deployment", NAME)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert "--tls-cert-file=/etc/dynamo-scaling/tls/tls.crt" in c["args"]
    assert "--tls-private-key-file=/etc/dynamo-scaling/tls/tls.key" in c["args"]
    assert "--insecure-http" not in c["args"] and "--api-docs" not in c["args"]
    assert "--max-body-bytes=65536" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--token-audience")]
    aud = one(render.docs(sets={**PLANNER, "planner.tokenAudiences[0]": "dynamo-planner"}), "Deployment", NAME)
    assert "--token-audience=dynamo-planner" in aud["spec"]["template"]["spec"]["containers"][0]["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["scheme"] == "HTTPS" and c[probe]["httpGet"]["port"] == "https"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "tls")
    assert "subPath" not in mount, "a subPath mount never sees a renewed Secret"
    vol = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert vol["secret"]["secretName"] == f"{NAME}-tls"
    assert one(docs, "Service", NAME)["spec"]["ports"][0]["name"] == "https"
    secret = one(docs, "Secret", f"{NAME}-tls")
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])

    docs = render.docs(sets={**PLANNER, "planner.insecureHttp": "true", "planner.apiDocs": "true"})
    c = one(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"][0]
    assert "--insecure-http" in c["args"] and "--api-docs" in c["args"]
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert not find(docs, "Secret", f"{NAME}-tls")


def test_cert_manager_mode_shares_the_metrics_server_issuer_or_needs_one(render):
    docs = render.docs(sets={**PLANNER, "planner.tls.mode": "certManager", "metricsServer.tls.mode": "certManager"})
    cert = one(docs, "Certificate", f"{NAME}-tls")
    assert cert["spec"]["issuerRef"]["name"] == "ds-dynamo-scaling-metrics-server-ca"
    assert f"{NAME}.dynamo-scaling.svc" in cert["spec"]["dnsNames"] and cert["spec"]["secretName"] == f"{NAME}-tls"
    proc = render.run(sets={**PLANNER, "planner.tls.mode": "certManager"}, check=False)
    assert proc.returncode != 0 and "planner.tls.certManager.issuerName" in proc.stderr
    proc = render.run(sets={**PLANNER, "planner.tls.mode": "secret"}, check=False)
    assert proc.returncode != 0 and "planner.tls.secretName" in proc.stderr


def test_write_role_is_aggregated_into_edit_only_when_asked(render):
    edit = one(render.docs(sets=PLANNER), "ClusterRole", f"{NAME}-edit")
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in edit["metadata"]["labels"]
    limits = one(render.docs(sets=PLANNER), "ClusterRole", f"{NAME}-override-limits")
    assert limits["rules"][0]["verbs"] == ["override-limits"]
    assert not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in limits["metadata"]["labels"])
    edit = one(render.docs(sets={**PLANNER, "planner.rbac.aggregateToEdit": "true"}), "ClusterRole", f"{NAME}-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"


@pytest.mark.cluster
def test_generated_certificate_is_served_by_the_planner_and_verifies_for_the_service(render, cluster, namespace,
                                                                                      tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planner_api"))
    from planner_process import PlannerProcess
    from planner_support import TOKEN

    secret = one(render.docs(sets=PLANNER), "Secret", f"{NAME}-tls")
    files = {k: tmp_path / k for k in ("tls.crt", "tls.key", "ca.crt")}
    for k, path in files.items():
        path.write_bytes(base64.b64decode(secret["data"][k]))
    (tmp_path / "token").write_text(TOKEN)
    planner = PlannerProcess(cluster.kubeconfig, namespace, "http://127.0.0.1:9", tmp_path, token_file=tmp_path / "token",
                             tls="self-signed", extra=("--tls-cert-file", str(files["tls.crt"]),
                                                       "--tls-private-key-file", str(files["tls.key"]))).start()
    try:
        ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
        # the name clients in the cluster use
        with socket.create_connection(("127.0.0.1", planner.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=f"{NAME}.dynamo-scaling.svc") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(ssl.SSLCertVerificationError):
            with socket.create_connection(("127.0.0.1", planner.port), timeout=5) as raw:
                ctx.wrap_socket(raw, server_hostname="someone-else.example")
        # kubelet's probe and a port-forwarded client (localhost)
        r = httpx.get(f"https://localhost:{planner.port}/healthz", verify=ctx, timeout=5)
        assert r.status_code == 200
    finally:
        planner.stop()
