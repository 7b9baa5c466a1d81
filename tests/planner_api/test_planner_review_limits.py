"""The planner API's TokenReview/SubjectAccessReview calls are bounded: an API server that does
not answer costs a caller one review timeout (503), callers beyond the concurrency bound are
refused (429) instead of queueing without end, and a rejected token is not reviewed again at once."""

from __future__ import annotations

import threading

import httpx
import pytest
from silent_apiserver import SilentServer
from test_control_api import PLANNER, Server, _service

from dynamo_scaling.kube import api_client
from scaler.control.api import create_app
from scaler.control.auth import AuthError, KubernetesAuthorizer

pytestmark = pytest.mark.cluster
REVIEW_TIMEOUT_S = 1.0


@pytest.fixture()
def silent(cluster, tmp_path):
    s = SilentServer()
    yield s, api_client(str(s.kubeconfig(cluster.kubeconfig, tmp_path / "silent.kubeconfig")))
    s.close()


def test_a_review_the_api_server_never_answers_fails_with_503(kube_api, namespace, silent):
    srv, silent_api = silent
    auth = KubernetesAuthorizer(silent_api, namespace, PLANNER, review_timeout_s=REVIEW_TIMEOUT_S)
    # the client waits far longer than the review timeout: a hung review shows as a client timeout
    with Server(create_app(_service(kube_api, namespace), auth)) as url, \
            httpx.Client(base_url=url, timeout=10 * REVIEW_TIMEOUT_S) as c:
        r = c.get("/v1/status", headers={"Authorization": "Bearer some-token"})
    assert r.status_code == 503, r.text
    assert "did not answer" in r.json()["error"]
    assert srv.accepted >= 1  # the review did go to the silent server


def test_reviews_beyond_the_bound_are_refused_not_queued(kube_api, namespace, silent):
    srv, silent_api = silent
    bound, callers = 2, 6
    # in-flight reviews hold their slots for the whole review timeout; the others wait a tenth of it
    auth = KubernetesAuthorizer(silent_api, namespace, PLANNER, review_timeout_s=3.0, max_concurrent=bound,
                                queue_wait_s=0.3)
    codes: list[int] = []
    start = threading.Barrier(callers)

    with Server(create_app(_service(kube_api, namespace), auth)) as url:
        def call(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                start.wait()
                codes.append(c.get("/v1/status", headers={"Authorization": f"Bearer token-{i}"}).status_code)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(codes) == callers and set(codes) <= {429, 503}, codes
    assert 429 in codes, codes  # callers that arrived while the bound was taken were refused
    assert srv.max_open <= bound, f"{srv.max_open} reviews reached the API server at once"


def _token_reviews(kubectl) -> float:
    """TokenReviews the API server has handled (its own request counter)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in kubectl("get", "--raw", "/metrics").splitlines()
               if line.startswith("apiserver_request_total{") and 'resource="tokenreviews"' in line)


def test_a_rejected_token_is_not_reviewed_again_at_once(kube_api, kubectl, namespace):
    auth = KubernetesAuthorizer(kube_api, namespace, PLANNER, deny_ttl_s=60)
    before = _token_reviews(kubectl)
    for _ in range(3):
        with pytest.raises(AuthError) as err:
            auth.authenticate("not-a-token")
        assert err.value.status == 401
    assert _token_reviews(kubectl) - before == 1
