"""Who may call the override API: Kubernetes bearer tokens checked with TokenReview, then
SubjectAccessReview on a virtual resource, so access is granted with ordinary RBAC:

    apiGroups: ["scaling.dynamo-scaling.io"], resources: ["planners"], resourceNames: [<planner>]
    verbs: ["get"]      read status and decisions
    verbs: ["update"]   change overrides, SLA targets, pause/resume/advisory

A static token is accepted only when the operator configured one explicitly (local use).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

API_GROUP = "scaling.dynamo-scaling.io"
RESOURCE = "planners"
READ, WRITE = "get", "update"


@dataclass(frozen=True)
class Caller:
    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Authorizer(Protocol):
    def authenticate(self, token: str) -> Caller: ...

    def authorize(self, caller: Caller, verb: str) -> None: ...


class _TTLCache:
    def __init__(self, ttl_s: float, size: int = 1024) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._items: dict[object, tuple[float, object]] = {}

    def get(self, key: object) -> object | None:
        hit = self._items.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        self._items.pop(key, None)
        return None

    def put(self, key: object, value: object) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)


class KubernetesAuthorizer:
    """TokenReview + SubjectAccessReview against the cluster, with short caches."""

    def __init__(self, api: client.ApiClient, namespace: str, planner_name: str,
                 cache_ttl_s: float = 10.0, audiences: tuple[str, ...] = ()) -> None:
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.namespace, self.name = namespace, planner_name
        self.audiences = list(audiences)
        self._tokens = _TTLCache(cache_ttl_s)
        self._decisions = _TTLCache(cache_ttl_s)

    def authenticate(self, token: str) -> Caller:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens.get(key)
        if isinstance(cached, Caller):
            return cached
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=self.audiences or None))
        try:
            res = self.authn.create_token_review(body)
        except ApiException as exc:
            log.warning("TokenReview failed", extra={"status": exc.status})
            raise AuthError(503, "cannot verify the token right now") from exc
        st = res.status
        if not st or not st.authenticated or not st.user:
            raise AuthError(401, "invalid or expired bearer token")
        caller = Caller(st.user.username, tuple(st.user.groups or ()), st.user.uid or "")
        self._tokens.put(key, caller)
        return caller

    def authorize(self, caller: Caller, verb: str) -> None:
        key = (caller, verb)
        allowed = self._decisions.get(key)
        if allowed is None:
            body = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                user=caller.username, groups=list(caller.groups), uid=caller.uid or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=API_GROUP, resource=RESOURCE, verb=verb,
                    namespace=self.namespace, name=self.name),
            ))
            try:
                res = self.authz.create_subject_access_review(body)
            except ApiException as exc:
                log.warning("SubjectAccessReview failed", extra={"status": exc.status})
                raise AuthError(503, "cannot check permissions right now") from exc
            allowed = bool(res.status and res.status.allowed)
            self._decisions.put(key, allowed)
        if not allowed:
            raise AuthError(403, f"{caller.username} may not {verb} {RESOURCE}.{API_GROUP} "
                                 f"{self.name!r} in namespace {self.namespace!r}")


class StaticTokenAuthorizer:
    """One shared token with full access. Only for local use, behind an explicit flag."""

    def __init__(self, token: str, username: str = "static-token") -> None:
        if len(token) < 16:
            raise ValueError("the static token must be at least 16 characters")
        self._token = token.encode()
        self._caller = Caller(username, ("system:authenticated",))

    def authenticate(self, token: str) -> Caller:
        if not hmac.compare_digest(token.encode(), self._token):
            raise AuthError(401, "invalid bearer token")
        return self._caller

    def authorize(self, caller: Caller, verb: str) -> None:
        return None
