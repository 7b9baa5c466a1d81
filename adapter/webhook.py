"""The adapter's HTTPS webhooks: CRD conversion between v1alpha1 and v1beta1 (`/convert`) and
validating admission of DGD and DGDSA writes (`/validate`)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from adapter import admission, sync, versions
from adapter.kube import Kube

log = logging.getLogger(__name__)
MAX_BODY = 8 * 1024 * 1024  # a ConversionReview of a long list can be large
RELOAD_PERIOD_S = 2.0  # how often the serving certificate files are checked for a renewal


def convert_review(review: dict) -> dict:
    req = review.get("request") or {}
    resp: dict = {"uid": req.get("uid", "")}
    try:
        resp["convertedObjects"] = [versions.convert(o, req["desiredAPIVersion"]) for o in req.get("objects") or []]
        resp["result"] = {"status": "Success"}
    except (KeyError, ValueError, TypeError) as exc:
        resp["result"] = {"status": "Failure", "message": f"conversion failed: {exc}"}
    return {"apiVersion": review.get("apiVersion", "apiextensions.k8s.io/v1"), "kind": "ConversionReview",
            "response": resp}


class Validator:
    def __init__(self, kube: Kube, exempt: set[str]) -> None:
        self.kube, self.exempt = kube, exempt

    def answer(self, req: dict) -> admission.Answer:
        resource = (req.get("resource") or {}).get("resource")
        sub, op, ns = req.get("subResource") or "", req.get("operation"), req.get("namespace")
        user = (req.get("userInfo") or {}).get("username", "")
        if resource == "dynamographdeployments" and op == "UPDATE" and not sub:
            return admission.review_dgd_update(req["oldObject"], req["object"], user, self.exempt)
        if resource != "dynamographdeploymentscalingadapters" or op not in ("CREATE", "UPDATE"):
            return admission.ALLOW
        if sub == "scale":
            name = req.get("name")
            adapter = self.kube.custom.get_namespaced_custom_object(
                versions.GROUP, self.kube.versions.dgdsa, ns, "dynamographdeploymentscalingadapters", name)
            replicas = int(((req["object"].get("spec") or {}).get("replicas")) or 0)
        elif not sub:
            adapter = req["object"]
            replicas = int((adapter.get("spec") or {}).get("replicas", 0))
        else:
            return admission.ALLOW
        got = self.kube.get_dgd(ns, (adapter["spec"].get("dgdRef") or {}).get("name", ""))
        dgd = got[0] if got else None
        others = [] if op != "CREATE" or dgd is None else [
            sync.AdapterInfo.from_raw(a) for a in self.kube.list_adapters(ns)]
        return admission.review_adapter(adapter, replicas, dgd, others, creating=op == "CREATE")

    def review(self, review: dict) -> dict:
        req = review.get("request") or {}
        try:
            ans = self.answer(req)
        except (ApiException, KeyError, ValueError, TypeError) as exc:
            # failurePolicy Ignore would let the write through anyway; say why we could not judge
            log.warning("admission review failed", extra={"error": str(exc)[:300]})
            ans = admission.ALLOW
        resp: dict = {"uid": req.get("uid", ""), "allowed": ans.allowed}
        if not ans.allowed:
            resp["status"] = {"code": 403, "reason": "Forbidden", "message": ans.message}
            log.info("write refused", extra={"user": (req.get("userInfo") or {}).get("username"),
                                             "object": req.get("name"), "why": ans.message[:300]})
        return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview",
                "response": resp}


def serve(address: str, port: int, cert_file: Path, key_file: Path, validator: Validator) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                return self._send(400, {"error": "body required, at most 8 MiB"})
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                return self._send(400, {"error": "not JSON"})
            if self.path.startswith("/convert"):
                return self._send(200, convert_review(body))
            if self.path.startswith("/validate"):
                return self._send(200, validator.review(body))
            self._send(404, {"error": "not found"})

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            return

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    server = ThreadingHTTPServer((address, port), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="webhook").start()
    threading.Thread(target=_follow_renewals, args=(ctx, cert_file, key_file), daemon=True,
                     name="webhook-cert").start()
    return server


def _stamp(*files: Path) -> tuple:
    return tuple(f.stat().st_mtime_ns for f in files)


def _follow_renewals(ctx: ssl.SSLContext, cert_file: Path, key_file: Path, period_s: float = RELOAD_PERIOD_S) -> None:
    """cert-manager renews the mounted Secret in place: load a changed pair into the serving
    context (new handshakes get it). A pair caught half-written fails to load and is retried."""
    seen = _stamp(cert_file, key_file)
    while True:
        time.sleep(period_s)
        try:
            now = _stamp(cert_file, key_file)
            if now == seen:
                continue
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert_file), str(key_file))  # check first
            ctx.load_cert_chain(str(cert_file), str(key_file))
            seen = now
            log.info("webhook serving certificate reloaded", extra={"cert_file": str(cert_file)})
        except (OSError, ssl.SSLError) as exc:
            log.warning("webhook certificate changed but does not load yet", extra={"error": str(exc)})


def own_username(api) -> str | None:
    """Who this process is to the API server (SelfSubjectReview), so its own DGD writes pass."""
    from kubernetes import client

    try:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"))
        return review.status.user_info.username
    except ApiException as exc:
        log.warning("could not learn this process's username", extra={"status": exc.status})
        return None


# -- registration, for the chart's templates, tests and docs ---------------------------------

def client_config(ca_pem: str, path: str, url: str | None = None, service: dict | None = None) -> dict:
    """A webhook clientConfig: a URL, or a Service reference {namespace, name, port}."""
    import base64

    cfg: dict = {"caBundle": base64.b64encode(ca_pem.encode()).decode()}
    if url:
        cfg["url"] = url.rstrip("/") + path
    else:
        cfg["service"] = {**(service or {}), "path": path}
    return cfg


def conversion_patch(ca_pem: str, url: str | None = None, service: dict | None = None) -> dict:
    """Merge patch for a DGD or DGDSA CRD: serve v1beta1 beside v1alpha1, converted by the adapter."""
    return {"spec": {"conversion": {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"], "clientConfig": client_config(ca_pem, "/convert", url, service)}}}}


def validating_configuration(name: str, ca_pem: str, url: str | None = None, service: dict | None = None,
                             namespace_selector: dict | None = None) -> dict:
    """The ValidatingWebhookConfiguration. failurePolicy Ignore: the controller still reverts a
    direct edit when the webhook is down, while Fail would block every DGD write (and Dynamo's
    operator) whenever the adapter is unavailable."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "validate.dynamo-scaling.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Ignore", "timeoutSeconds": 5, "matchPolicy": "Equivalent",
            "clientConfig": client_config(ca_pem, "/validate", url, service),
            **({"namespaceSelector": namespace_selector} if namespace_selector else {}),
            "rules": [
                {"apiGroups": ["nvidia.com"], "apiVersions": ["*"], "operations": ["UPDATE"],
                 "resources": ["dynamographdeployments"], "scope": "Namespaced"},
                {"apiGroups": ["nvidia.com"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["dynamographdeploymentscalingadapters",
                               "dynamographdeploymentscalingadapters/scale"], "scope": "Namespaced"},
            ],
        }],
    }
