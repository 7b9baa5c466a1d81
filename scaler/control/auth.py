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
import threading
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dynamo_scaling.ttl_cache import TTLCache

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


class KubernetesAuthorizer:
    """TokenReview + SubjectAccessReview against the cluster, with short caches. Each review has
    a timeout and at most `max_concurrent` run at once: a caller that finds no free slot within
    `queue_wait_s` gets 429, an API server that does not answer in time 503, so a slow API server
    never holds requests (and the server's worker threads) indefinitely."""

    def __init__(self, api: client.ApiClient, namespace: str, planner_name: str,
                 cache_ttl_s: float = 10.0, audiences: tuple[str, ...] = (), *, deny_ttl_s: float = 5.0,
                 review_timeout_s: float = 5.0, max_concurrent: int = 8, queue_wait_s: float = 1.0) -> None:
        if review_timeout_s <= 0 or max_concurrent < 1 or queue_wait_s < 0:
            raise ValueError("review_timeout_s > 0, max_concurrent >= 1 and queue_wait_s >= 0 are required")
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.namespace, self.name = namespace, planner_name
        self.audiences = list(audiences)
        self.review_timeout_s, self.queue_wait_s = review_timeout_s, queue_wait_s
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._tokens = TTLCache(cache_ttl_s)
        # a rejected token is remembered briefly, so repeating it does not cost a TokenReview each time
        self._rejected = TTLCache(deny_ttl_s)
        self._decisions = TTLCache(cache_ttl_s)

    def _review(self, kind: str, call, body):
        if not self._slots.acquire(timeout=self.queue_wait_s):
            log.warning("review refused: too many in flight", extra={"review": kind})
            raise AuthError(429, f"too many {kind}s in flight; retry shortly")
        try:
            t = self.review_timeout_s
            return call(body, _request_timeout=(t, t))
        except ApiException as exc:
            log.warning(f"{kind} failed", extra={"status": exc.status})
            raise AuthError(503, f"cannot complete the {kind} right now (API server answered {exc.status})") from exc
        except Exception as exc:  # timeouts and connection errors
            log.warning(f"{kind} failed", extra={"error": str(exc)[:200]})
            raise AuthError(503, f"cannot complete the {kind} right now: the API server did not answer") from exc
        finally:
            self._slots.release()

    def authenticate(self, token: str) -> Caller:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens.get(key)
        if isinstance(cached, Caller):
            return cached
        if self._rejected.get(key):
            raise AuthError(401, "invalid or expired bearer token")
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=self.audiences or None))
        res = self._review("TokenReview", self.authn.create_token_review, body)
        st = res.status
        if not st or not st.authenticated or not st.user:
            self._rejected.put(key, True)
            raise AuthError(401, "invalid or expired bearer token" + (
                f", or not issued for {' or '.join(self.audiences)}" if self.audiences else ""))
        if self.audiences and not set(st.audiences or ()) & set(self.audiences):
            # an authenticator that ignores audiences answers with none: the token may have been
            # issued for someone else and replayed here
            self._rejected.put(key, True)
            raise AuthError(401, f"the bearer token was not issued for {' or '.join(self.audiences)}")
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
            res = self._review("SubjectAccessReview", self.authz.create_subject_access_review, body)
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
