"""The HTTP side: `external.metrics.k8s.io/v1beta1` for the API server (HPA), KEDA's JSON,
health, a minimal OpenAPI document and the server's own `/metrics`.

One app per listener: on the TLS port every path except health requires an authenticated
(and, if enabled, authorized) caller; the plain-HTTP port has no client authentication."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from external_metrics import keda_http
from external_metrics.auth import (ALWAYS_ALLOWED, AuthError, Authenticator, SubjectAccessReviewer, TokenReviewer,
                                   bearer_token, check_token, request_attributes)
from external_metrics.metrics import ServerMetrics
from external_metrics.quantity import format_quantity
from external_metrics.reader import ReadError, Reader
from external_metrics.selectors import SelectorError, parse

GROUP, VERSION = "external.metrics.k8s.io", "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
BASE = f"/apis/{GROUP_VERSION}"
MAX_QUERY_STRING = 8192
JSON = "application/json"


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=JSON)


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 414: "RequestURITooLong",
            500: "InternalError", 503: "ServiceUnavailable"}


def status_body(code: int, message: str, reason: str | None = None, name: str | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason or _REASONS.get(code, "Unknown"), "code": code}
    if name:
        body["details"] = {"name": name, "group": GROUP, "kind": name}
    return body


def status(code: int, message: str, reason: str | None = None, name: str | None = None) -> Response:
    return _json(status_body(code, message, reason, name), code)


def _route(path: str) -> str:
    if path.startswith(BASE + "/namespaces/"):
        return "metric"
    if path.startswith("/apis"):
        return "discovery"
    if path.startswith("/keda/"):
        return "keda"
    if path in ALWAYS_ALLOWED:
        return "health"
    if path in ("/metrics", "/openapi/v2", "/openapi/v3"):
        return path.strip("/").replace("/", "_")
    return "other"


# what the plain-HTTP port answers unless it is opened to the API (probes and scrapes)
OPEN_PATHS = ALWAYS_ALLOWED | {"/metrics"}


class Guard:
    """ASGI middleware: request latency for every call; on the TLS port, authentication and
    authorization before the app sees the request; on the plain-HTTP port, nothing but probes and
    `/metrics` unless `serve_api` opens it (it authenticates nobody)."""

    def __init__(self, app, metrics: ServerMetrics, interface: str, authenticator: Authenticator | None,
                 authorizer: SubjectAccessReviewer | None, keda_token: str | None, serve_api: bool = False,
                 token_reviewer: TokenReviewer | None = None) -> None:
        self.app, self.metrics, self.interface, self.serve_api = app, metrics, interface, serve_api
        self.authenticator, self.authorizer, self.keda_token = authenticator, authorizer, keda_token
        self.token_reviewer = token_reviewer
        self._timers: dict[tuple[str, int], object] = {}  # histogram children, looked up once each
        self._issuer_checked: dict[bytes, object] = {}  # client certificate (DER) -> the config it passed under

    def _observe(self, path: str, code: int, seconds: float) -> None:
        route = _route(path)
        timer = self._timers.get((route, code))
        if timer is None:
            timer = self._timers[(route, code)] = self.metrics.requests.labels(self.interface, route, str(code))
        timer.observe(seconds)

    def _authenticate(self, cert: dict | None, der: bytes | None, headers: list):
        """The front-proxy user of a request. The signature of the client certificate is checked
        against the CAs in effect once per certificate and CA set, not on every read: the
        aggregator sends all its reads with one certificate, and the check is the costliest step
        of a cached read. A CA change (rotation) makes every certificate checked again."""
        authn = self.authenticator
        if authn is None:
            return Authenticator(None).authenticate(cert, headers)
        config = authn.config
        if der is not None and config is not None and self._issuer_checked.get(der) is config:
            return authn.authenticate(cert, headers)  # same certificate, same CAs: signature known good
        user = authn.authenticate(cert, headers, der)
        if der is not None and config is not None and authn.config is config:
            if len(self._issuer_checked) >= 256:
                self._issuer_checked.clear()
            self._issuer_checked[der] = config
        return user

    async def _reject(self, send, code: int, message: str, reason_label: str) -> None:
        self.metrics.auth_failures.labels(reason_label).inc()
        body = json.dumps(status_body(code, message)).encode()
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _authorized(self, send, user, path: str, method: str) -> bool:
        """SubjectAccessReview of one request (when authorization is on); answers it if not."""
        if self.authorizer is None:
            return True
        try:
            ok, why = await self.authorizer.allowed(user, request_attributes(path, method))
        except AuthError as exc:  # the check could not be made now (429/503): not a denial
            await self._reject(send, exc.code, exc.message, "unavailable")
            return False
        if not ok:
            await self._reject(send, 403, f'user "{user.name}" may not get {path}' + (f": {why}" if why else ""),
                               "forbidden")
        return ok

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path = scope["path"]
        code_box = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                code_box[0] = message["status"]
            await send(message)

        try:
            if len(scope.get("query_string", b"")) > MAX_QUERY_STRING:
                await self._reject(send_wrapper, 414, f"query string longer than {MAX_QUERY_STRING} bytes", "oversized")
                return
            if self.interface == "http" and not self.serve_api and path not in OPEN_PATHS:
                await self._reject(send_wrapper, 403, "the plain-HTTP port serves only /metrics and health checks: "
                                   "read metrics on the TLS port, or start with --http-serves-api", "plain-http")
                return
            keda = path.startswith("/keda/")
            if keda and self.keda_token and check_token(self.keda_token, scope["headers"]):
                pass  # the one static token of the chart's kedaTokenSecret: every namespace
            elif keda and self.token_reviewer is not None and (token := bearer_token(scope["headers"])):
                # a ServiceAccount's token: reads what its RBAC allows, as through the API server
                try:
                    user = await self.token_reviewer.user(token)
                except AuthError as exc:
                    await self._reject(send_wrapper, exc.code, exc.message, "unauthenticated")
                    return
                if not await self._authorized(send_wrapper, user, path, scope["method"]):
                    return
            elif keda and self.keda_token:
                await self._reject(send_wrapper, 401, "a valid bearer token (or X-API-KEY) is required", "token")
                return
            elif self.interface == "https" and path not in ALWAYS_ALLOWED:
                tls = scope.get("extensions", {}).get("tls", {})
                cert, der = tls.get("client_cert"), tls.get("client_cert_der")
                try:
                    user = self._authenticate(cert, der, scope["headers"])
                except AuthError as exc:
                    await self._reject(send_wrapper, exc.code, exc.message, "unauthenticated")
                    return
                if not await self._authorized(send_wrapper, user, path, scope["method"]):
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            self._observe(path, code_box[0], time.perf_counter() - started)


class MetricReads:
    """The hot path, `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}`,
    as plain ASGI in front of the FastAPI app (everything else). Encoded answers are remembered
    per normalised request (path and canonical selector) until the signal's next collection, so
    a repeated read is one dictionary lookup; freshness is still checked on every request. The
    memory they take is bounded in bytes (oldest first out), and a request spelt differently
    (selector order, spaces, escaping) neither misses its answer for long nor adds an entry."""

    PREFIX = BASE + "/namespaces/"
    PARAMETERS = frozenset({"labelSelector"})
    ENTRY_OVERHEAD = 256  # dict slot, tuple, headers: a rough per-entry cost beside the bytes held

    def __init__(self, reader: Reader, inner, memo_bytes: int = 16 << 20) -> None:
        self.reader, self.inner = reader, inner
        self.memo_bytes = memo_bytes
        # (path, canonical query string) -> (signal, collected_at, response headers, body, size)
        self._memo: dict[tuple[str, bytes], tuple[str, float, list, bytes, int]] = {}
        self._memo_used = 0

    def memo_size(self) -> tuple[int, int]:
        """Entries and bytes (as counted against the bound) of the remembered answers."""
        return len(self._memo), self._memo_used

    def _remember(self, key: tuple[str, bytes], signal: str, collected_at: float, headers: list, body: bytes) -> None:
        size = len(key[0]) + len(key[1]) + len(body) + self.ENTRY_OVERHEAD
        if size > self.memo_bytes:
            return
        old = self._memo.pop(key, None)
        if old is not None:
            self._memo_used -= old[4]
        while self._memo and self._memo_used + size > self.memo_bytes:
            self._memo_used -= self._memo.pop(next(iter(self._memo)))[4]
        self._memo[key] = (signal, collected_at, headers, body, size)
        self._memo_used += size

    def answer(self, namespace: str, metric: str, selector: str | None,
               memo_key: tuple[str, bytes] | None = None) -> tuple[int, list, bytes]:
        """Status, response headers and body of one read (errors as metav1.Status)."""
        try:
            reading = self.reader.read(namespace, metric, selector)
        except ReadError as exc:
            return _error(exc.code, exc.message, exc.reason, metric)
        ts = rfc3339(reading.collected_at)
        items = []
        for v in reading.values:
            item = {"metricName": reading.signal, "metricLabels": v.labels, "timestamp": ts,
                    "value": format_quantity(v.value)}
            if reading.window_s is not None:
                item["window"] = reading.window_s
            items.append(item)
        body = json.dumps({"kind": "ExternalMetricValueList", "apiVersion": GROUP_VERSION, "metadata": {},
                           "items": items}, separators=(",", ":")).encode()
        headers = _headers(body)
        if memo_key is not None:
            self._remember(memo_key, reading.signal, reading.collected_at, headers, body)
        return 200, headers, body

    def _remembered(self, key: tuple[str, bytes]) -> tuple[list, bytes] | None:
        hit = self._memo.get(key)
        if hit is None:
            return None
        cache = self.reader.cache
        if cache.state(hit[0]).collected_at != hit[1] or not cache.fresh(hit[0]):
            return None
        return hit[2], hit[3]

    def _normalise(self, path: str, qs: bytes, metric: str) -> tuple[tuple[str, bytes] | None, str | None, tuple | None]:
        """(canonical memo key or None, selector text, or an error answer) for one request."""
        params = parse_qsl(qs.decode("latin-1"), keep_blank_values=True)
        names = [k for k, _ in params]
        unknown = sorted(set(names) - self.PARAMETERS)
        if unknown:
            return None, None, _error(400, f'unknown query parameter "{unknown[0]}"; '
                                           f"only labelSelector is accepted", "BadRequest", metric)
        if len(names) > len(set(names)):
            return None, None, _error(400, "labelSelector given more than once", "BadRequest", metric)
        selector = params[0][1] if params else None
        try:
            parsed = parse(selector)
        except SelectorError:
            return None, selector, None  # the read answers 400 with the parser's reason
        canonical = ",".join(sorted(str(r) for r in parsed.requirements))
        return (path, urlencode({"labelSelector": canonical}).encode() if canonical else b""), selector, None

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and path.startswith(self.PREFIX):
            qs = scope.get("query_string", b"")
            hit = self._remembered((path, qs))  # a request already in canonical form: one lookup
            if hit is not None:
                code, (headers, body) = 200, hit
            else:
                parts = path[len(self.PREFIX):].split("/")
                if len(parts) != 2 or not all(parts):
                    return await self.inner(scope, receive, send)
                key, selector, error = self._normalise(path, qs, parts[1])
                if error is not None:
                    code, headers, body = error
                elif key is not None and (hit := self._remembered(key)) is not None:
                    code, (headers, body) = 200, hit
                else:
                    code, headers, body = self.answer(parts[0], parts[1], selector, key)
            await send({"type": "http.response.start", "status": code, "headers": headers})
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
            return
        await self.inner(scope, receive, send)


def _error(code: int, message: str, reason: str, metric: str) -> tuple[int, list, bytes]:
    body = json.dumps(status_body(code, message, reason, metric)).encode()
    return code, _headers(body), body


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


def discovery_documents(signals: list[str]) -> dict[str, bytes]:
    resources = [{"name": s, "singularName": "", "namespaced": True, "kind": "ExternalMetricValueList",
                  "verbs": ["get"]} for s in signals]
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    group = {"name": GROUP, "versions": [version], "preferredVersion": version}
    docs = {
        "resources": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
                      "resources": resources},
        "group": {"kind": "APIGroup", "apiVersion": "v1", **group},
        "groups": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]},
        "openapi_v2": {"swagger": "2.0", "info": {"title": "dynamo-scaling external metrics", "version": VERSION},
                       "paths": {}},
        "openapi_v3": {"paths": {}},
    }
    return {k: json.dumps(v, separators=(",", ":")).encode() for k, v in docs.items()}


def create_app(reader: Reader, metrics: ServerMetrics, *, interface: str = "http",
               authenticator: Authenticator | None = None, authorizer: SubjectAccessReviewer | None = None,
               keda_token: str | None = None, ready: Callable[[], tuple[bool, str]] = lambda: (True, "ok"),
               serve_api: bool = False, token_reviewer: TokenReviewer | None = None):
    """The ASGI app of one listener (`interface` "https" authenticates callers; "http" serves
    only probes and `/metrics` unless `serve_api`)."""
    app = FastAPI(title="dynamo-scaling metrics server", docs_url=None, redoc_url=None, openapi_url=None)
    docs = discovery_documents(reader.signals)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return status(exc.status_code, f"{request.url.path}: {exc.detail}")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        return status(500, f"internal error: {type(exc).__name__}")

    @app.get("/apis")
    async def api_groups():
        return Response(docs["groups"], media_type=JSON)

    @app.get(f"/apis/{GROUP}")
    async def api_group():
        return Response(docs["group"], media_type=JSON)

    @app.get(BASE)
    async def api_resources():
        return Response(docs["resources"], media_type=JSON)

    @app.get(BASE + "/{rest:path}")
    async def external_metric_bad_path(rest: str):
        return status(404, f"{BASE}/{rest}: use {BASE}/namespaces/<namespace>/<metric>")

    @app.get("/healthz")
    @app.get("/livez")
    async def healthz():
        return Response("ok", media_type="text/plain")

    @app.get("/readyz")
    async def readyz():
        ok, detail = ready()
        return Response(detail, status_code=200 if ok else 503, media_type="text/plain")

    @app.get("/openapi/v2")
    async def openapi_v2():
        return Response(docs["openapi_v2"], media_type=JSON)

    @app.get("/openapi/v3")
    async def openapi_v3():
        return Response(docs["openapi_v3"], media_type=JSON)

    @app.get("/metrics")
    async def own_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    keda_http.add_routes(app, reader)
    return Guard(MetricReads(reader, app), metrics, interface, authenticator, authorizer, keda_token, serve_api,
                 token_reviewer)
