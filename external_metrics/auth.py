"""Authentication and authorization of calls on the TLS port.

The Kubernetes aggregation layer calls an extension API server with the front-proxy client
certificate and names the end user in request headers (`X-Remote-User`, `X-Remote-Group`,
`X-Remote-Extra-*`). A call is authenticated when its client certificate was signed by the
requestheader CA (checked in the TLS handshake) and its common name is an allowed name (any,
if the list is empty); the user is then taken from the headers. The CA and names come from
`kube-system/extension-apiserver-authentication` or from flags.

Authorization, when enabled, asks the API server with a SubjectAccessReview (cached briefly).
Without a certificate the answer is 401, a denied user gets 403.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from dynamo_scaling.ttl_cache import TTLCache

log = logging.getLogger(__name__)

CONFIGMAP_NAMESPACE, CONFIGMAP_NAME = "kube-system", "extension-apiserver-authentication"
ALWAYS_ALLOWED = frozenset({"/healthz", "/readyz", "/livez"})


class AuthError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RequestHeaderConfig:
    ca_pem: bytes
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @classmethod
    def from_configmap(cls, data: dict[str, str]) -> "RequestHeaderConfig | None":
        """From the data of kube-system/extension-apiserver-authentication; None when the API
        server was started without requestheader authentication."""
        ca = data.get("requestheader-client-ca-file")
        if not ca:
            return None

        def arr(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = data.get(key)
            if raw is None:
                return default
            try:
                return tuple(json.loads(raw))
            except ValueError:
                return tuple(p.strip() for p in raw.split(",") if p.strip())

        return cls(ca.encode(), arr("requestheader-allowed-names", ()),
                   arr("requestheader-username-headers", ("X-Remote-User",)),
                   arr("requestheader-group-headers", ("X-Remote-Group",)),
                   arr("requestheader-extra-headers-prefix", ("X-Remote-Extra-",)))

    @classmethod
    def read_configmap(cls, api_client) -> "RequestHeaderConfig | None":
        from kubernetes import client

        cm = client.CoreV1Api(api_client).read_namespaced_config_map(CONFIGMAP_NAME, CONFIGMAP_NAMESPACE)
        return cls.from_configmap(cm.data or {})

    @classmethod
    def from_files(cls, ca_file: Path, allowed_names: list[str], username_headers: list[str],
                   group_headers: list[str], extra_prefixes: list[str]) -> "RequestHeaderConfig":
        return cls(Path(ca_file).read_bytes(), tuple(allowed_names), tuple(username_headers),
                   tuple(group_headers), tuple(extra_prefixes))


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)


def _common_name(cert: dict | None) -> str | None:
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def _load_cas(ca_pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return []


def issued_by_any(cert_der: bytes, cas: list[x509.Certificate]) -> bool:
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        return False
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


class Authenticator:
    """Front-proxy authentication. `config` can be replaced while serving (CA rotation): the TLS
    layer may still accept a retired CA it once loaded, so the certificate is checked again
    against the CAs in effect now."""

    def __init__(self, config: RequestHeaderConfig | None) -> None:
        self.config = config

    @property
    def config(self) -> RequestHeaderConfig | None:
        return self._config

    @config.setter
    def config(self, value: RequestHeaderConfig | None) -> None:
        self._config, self._cas = value, (_load_cas(value.ca_pem) if value else [])

    def authenticate(self, peer_cert: dict | None, headers: list[tuple[bytes, bytes]],
                     peer_cert_der: bytes | None = None) -> User:
        """The user behind a request whose verified client certificate is `peer_cert` (the
        dict of `SSLSocket.getpeercert()`, None without one; `peer_cert_der` its DER form).
        Raises AuthError(401)."""
        cfg = self.config
        if cfg is None:
            raise AuthError(401, "requestheader authentication is not configured on this server")
        if not peer_cert:
            raise AuthError(401, "a client certificate signed by the requestheader CA is required")
        if peer_cert_der is not None and not issued_by_any(peer_cert_der, self._cas):
            raise AuthError(401, "the client certificate is not signed by the current requestheader CA")
        cn = _common_name(peer_cert)
        if cfg.allowed_names and cn not in cfg.allowed_names:
            raise AuthError(401, f"client certificate CN {cn!r} is not an allowed requestheader name")
        lower = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
        user = None
        for h in cfg.username_headers:
            hl = h.lower()
            user = next((v for k, v in lower if k == hl and v), None)
            if user:
                break
        if not user:
            raise AuthError(401, f"no user in headers {', '.join(cfg.username_headers)}")
        groups = tuple(v for h in cfg.group_headers for k, v in lower if k == h.lower())
        extra: dict[str, list[str]] = {}
        for prefix in cfg.extra_prefixes:
            pl = prefix.lower()
            for k, v in lower:
                if k.startswith(pl) and len(k) > len(pl):
                    extra.setdefault(unquote(k[len(pl):]), []).append(v)
        return User(user, groups, extra)


def check_token(expected: str | None, headers: list[tuple[bytes, bytes]]) -> bool:
    """Bearer token (`Authorization: Bearer T`) or API key (`X-API-KEY: T`), constant time."""
    if not expected:
        return True
    for k, v in headers:
        k_l = k.lower()
        if k_l == b"authorization" and v[:7].lower() == b"bearer ":
            if hmac.compare_digest(v[7:].strip(), expected.encode()):
                return True
        elif k_l == b"x-api-key" and hmac.compare_digest(v.strip(), expected.encode()):
            return True
    return False


# what a token's cache entry holds once the API server has rejected it
_REJECTED = "rejected"


class SingleFlight:
    """Concurrent callers with the same key share the one call in flight, and its answer or its
    error: when a cached review expires under load, every read in flight for that key would
    otherwise send its own review and most would be turned away by the concurrency bound."""

    def __init__(self) -> None:
        self._calls: dict = {}

    async def run(self, key, make):
        task = self._calls.get(key)
        if task is None:
            task = self._calls[key] = asyncio.ensure_future(make())
            task.add_done_callback(lambda t: self._done(key, t))
        return await asyncio.shield(task)  # a caller that gives up does not cancel the others' call

    def _done(self, key, task: asyncio.Future) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody waited for is not logged as lost


class _BoundedReviews:
    """What both reviewers share: answers cached (allowed and denied for different times), a
    timeout per review, at most `max_concurrent` in flight, and one review per key at a time."""

    def __init__(self, allow_ttl_s: float, deny_ttl_s: float, review_timeout_s: float, max_concurrent: int,
                 queue_wait_s: float) -> None:
        if review_timeout_s <= 0 or max_concurrent < 1 or queue_wait_s < 0:
            raise ValueError("review_timeout_s > 0, max_concurrent >= 1 and queue_wait_s >= 0 are required")
        self.allow_ttl_s, self.deny_ttl_s = allow_ttl_s, deny_ttl_s
        self.review_timeout_s, self.queue_wait_s = review_timeout_s, queue_wait_s
        self._slots = asyncio.Semaphore(max_concurrent)
        self._cache = TTLCache(allow_ttl_s)
        self._flights = SingleFlight()


class SubjectAccessReviewer(_BoundedReviews):
    """Delegated authorization: asks the API server whether the user may get the resource
    (external.metrics.k8s.io metric in a namespace) or the non-resource path. Answers are
    cached (allowed 10 s, denied 5 s). Each review has a timeout and at most `max_concurrent`
    run at once (each holds a worker thread): a check that finds no free slot within
    `queue_wait_s` raises AuthError(429), one the API server does not answer in time
    AuthError(503); neither is cached."""

    def __init__(self, api_client, allow_ttl_s: float = 10.0, deny_ttl_s: float = 5.0, *,
                 review_timeout_s: float = 5.0, max_concurrent: int = 4, queue_wait_s: float = 1.0) -> None:
        from kubernetes import client

        super().__init__(allow_ttl_s, deny_ttl_s, review_timeout_s, max_concurrent, queue_wait_s)
        self._authz = client.AuthorizationV1Api(api_client)
        self._models = client

    def _review(self, user: User, attrs: dict) -> tuple[bool, str]:
        c = self._models
        spec = c.V1SubjectAccessReviewSpec(user=user.name, groups=list(user.groups),
                                           extra={k: list(v) for k, v in user.extra.items()} or None)
        if "path" in attrs:
            spec.non_resource_attributes = c.V1NonResourceAttributes(path=attrs["path"], verb=attrs["verb"])
        else:
            spec.resource_attributes = c.V1ResourceAttributes(**attrs)
        t = self.review_timeout_s
        res = self._authz.create_subject_access_review(c.V1SubjectAccessReview(spec=spec), _request_timeout=(t, t))
        return bool(res.status.allowed), res.status.reason or ""

    async def allowed(self, user: User, attrs: dict) -> tuple[bool, str]:
        """(allowed, reason); raises AuthError(429 or 503) when the check cannot be made now."""
        key = (user.name, user.groups, tuple(sorted(attrs.items())))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        return await self._flights.run(key, lambda: self._review_and_cache(key, user, attrs))

    async def _review_and_cache(self, key: tuple, user: User, attrs: dict) -> tuple[bool, str]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_wait_s)
        except TimeoutError:
            log.warning("SubjectAccessReview refused: too many in flight", extra={"user": user.name})
            raise AuthError(429, "too many authorization checks in flight; retry shortly") from None
        try:
            # the slot is held until the thread ends, which its request timeout bounds
            ok, reason = await asyncio.to_thread(self._review, user, attrs)
        except Exception as exc:  # the API server is unreachable or slow: not a denial, do not cache
            log.warning("SubjectAccessReview failed", extra={"user": user.name, "error": str(exc)[:200]})
            raise AuthError(503, f"authorization check failed: {str(exc)[:200]}") from exc
        finally:
            self._slots.release()
        self._cache.put(key, (ok, reason), self.allow_ttl_s if ok else self.deny_ttl_s)
        return ok, reason


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k.lower() == b"authorization" and v[:7].lower() == b"bearer ":
            return v[7:].strip().decode("latin-1") or None
    return None


class TokenReviewer(_BoundedReviews):
    """Kubernetes bearer tokens (a ServiceAccount's, held by KEDA's TriggerAuthentication) checked
    with a TokenReview. Bounded like the SubjectAccessReviewer: a timeout per review, at most
    `max_concurrent` at once (429 beyond, after `queue_wait_s`), 503 when the API server does not
    answer; users are remembered for `allow_ttl_s`, rejected tokens for `deny_ttl_s`."""

    def __init__(self, api_client, allow_ttl_s: float = 10.0, deny_ttl_s: float = 5.0, *,
                 review_timeout_s: float = 5.0, max_concurrent: int = 4, queue_wait_s: float = 1.0) -> None:
        from kubernetes import client

        super().__init__(allow_ttl_s, deny_ttl_s, review_timeout_s, max_concurrent, queue_wait_s)
        self._authn = client.AuthenticationV1Api(api_client)
        self._models = client

    def _review(self, token: str) -> User | None:
        c = self._models
        t = self.review_timeout_s
        res = self._authn.create_token_review(c.V1TokenReview(spec=c.V1TokenReviewSpec(token=token)),
                                              _request_timeout=(t, t))
        st = res.status
        if not st or not st.authenticated or not st.user:
            return None
        return User(st.user.username, tuple(st.user.groups or ()),
                    {k: list(v) for k, v in (st.user.extra or {}).items()})

    async def user(self, token: str) -> User:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        if hit is _REJECTED:
            raise AuthError(401, "invalid or expired bearer token")
        if hit is not None:
            return hit
        return await self._flights.run(key, lambda: self._review_and_cache(key, token))

    async def _review_and_cache(self, key: str, token: str) -> User:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_wait_s)
        except TimeoutError:
            raise AuthError(429, "too many token reviews in flight; retry shortly") from None
        try:
            user = await asyncio.to_thread(self._review, token)
        except Exception as exc:  # unreachable or slow API server: not a rejection, do not cache
            log.warning("TokenReview failed", extra={"error": str(exc)[:200]})
            raise AuthError(503, "cannot check the bearer token right now") from exc
        finally:
            self._slots.release()
        self._cache.put(key, user or _REJECTED, self.allow_ttl_s if user else self.deny_ttl_s)
        if user is None:
            raise AuthError(401, "invalid or expired bearer token")
        return user


def request_attributes(path: str, method: str) -> dict:
    """SubjectAccessReview attributes of a request path, as the API server would see it."""
    verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "get")
    parts = [p for p in path.split("/") if p]
    # /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}
    if len(parts) == 6 and parts[0] == "apis" and parts[3] == "namespaces":
        return {"group": parts[1], "version": parts[2], "namespace": parts[4], "resource": parts[5], "verb": verb}
    # /keda/v1/{ns}/{metric}: the same permission as reading that metric through the API server
    if len(parts) == 4 and parts[0] == "keda" and parts[1] == "v1":
        return {"group": "external.metrics.k8s.io", "version": "v1beta1", "namespace": parts[2],
                "resource": parts[3], "verb": verb}
    return {"path": path, "verb": verb}
