"""The metrics server's SubjectAccessReviews are bounded: an API server that does not answer
costs a read one review timeout and an answer of 503 (not a hang, not a 403), and reads beyond
the concurrency bound are refused with 429 instead of queueing without end."""

from __future__ import annotations

import asyncio

import pytest
from silent_apiserver import SilentServer

from dynamo_scaling.kube import api_client
from external_metrics.api import Guard
from external_metrics.auth import Authenticator, RequestHeaderConfig, SubjectAccessReviewer
from external_metrics.cache import Cache
from external_metrics.metrics import ServerMetrics

pytestmark = pytest.mark.cluster
REVIEW_TIMEOUT_S = 1.0
PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/dynamo_queue_depth"


@pytest.fixture()
def silent(cluster, tmp_path):
    s = SilentServer()
    yield s, api_client(str(s.kubeconfig(cluster.kubeconfig, tmp_path / "silent.kubeconfig")))
    s.close()


async def _app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _guard(reviewer: SubjectAccessReviewer) -> Guard:
    # the front proxy's certificate was checked in the TLS handshake; its user is in the headers
    authn = Authenticator(RequestHeaderConfig(ca_pem=b""))
    return Guard(_app, ServerMetrics(Cache([], 60.0)), "https", authn, reviewer, keda_token=None)


async def _read(guard: Guard, user: str) -> int:
    scope = {"type": "http", "method": "GET", "path": PATH, "query_string": b"",
             "headers": [(b"x-remote-user", user.encode())],
             "extensions": {"tls": {"client_cert": {"subject": ((("commonName", "front-proxy-client"),),)}}}}
    status: list[int] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await guard(scope, receive, send)
    return status[0]


async def test_a_review_the_api_server_never_answers_fails_with_503(silent):
    srv, api = silent
    guard = _guard(SubjectAccessReviewer(api, review_timeout_s=REVIEW_TIMEOUT_S))
    # far longer than the review timeout: a hung review shows as this timeout
    assert await asyncio.wait_for(_read(guard, "alice"), 10 * REVIEW_TIMEOUT_S) == 503
    assert srv.accepted >= 1


async def test_reviews_beyond_the_bound_are_refused_not_queued(silent):
    srv, api = silent
    bound, callers = 2, 6
    guard = _guard(SubjectAccessReviewer(api, review_timeout_s=3.0, max_concurrent=bound, queue_wait_s=0.3))
    codes = await asyncio.wait_for(asyncio.gather(*(_read(guard, f"user-{i}") for i in range(callers))), 30)
    assert set(codes) <= {429, 503}, codes
    assert 429 in codes, codes
    assert srv.max_open <= bound, f"{srv.max_open} reviews reached the API server at once"


async def test_concurrent_reads_of_one_caller_share_one_review(silent):
    # what an expired cache entry meets under load: many reads in flight for the same user and
    # metric; one review answers them all instead of each its own (and most of them 429)
    srv, api = silent
    guard = _guard(SubjectAccessReviewer(api, review_timeout_s=REVIEW_TIMEOUT_S, max_concurrent=2, queue_wait_s=0.3))
    codes = await asyncio.wait_for(asyncio.gather(*(_read(guard, "hpa") for _ in range(6))), 30)
    assert codes == [503] * 6, codes
    assert srv.accepted == 1, f"{srv.accepted} reviews for one caller and one metric"
