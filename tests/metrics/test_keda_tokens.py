"""KEDA's metrics-api trigger on the TLS port with a ServiceAccount token (a TriggerAuthentication
holding the token of a ServiceAccount in the ScaledObject's namespace): the metrics server checks
the token with a TokenReview and the read with a SubjectAccessReview, the same RBAC as a read of
external.metrics.k8s.io through the API server. A caller reads the namespaces its RBAC allows,
and no other."""

from __future__ import annotations

import secrets

import httpx
import pytest
from support import MetricsServerProcess

pytestmark = pytest.mark.cluster


def reader_rbac(namespace: str, sa: str) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "external-metrics-reader", "namespace": namespace},
         "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"external-metrics-reader-{sa}", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "external-metrics-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]},
    ]


@pytest.fixture()
def other_namespace(kubectl):
    name = f"t-{secrets.token_hex(4)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("static", [False, True], ids=["tokens-only", "beside-a-static-token"])
def test_service_account_tokens_read_only_what_their_rbac_allows(
        cluster, kubectl, namespace, other_namespace, tmp_path, static):
    kubectl.apply(reader_rbac(namespace, "keda-reader"))
    kubectl.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody", "namespace": namespace}})
    token = {sa: kubectl("-n", namespace, "create", "token", sa, "--duration=10m").strip()
             for sa in ("keda-reader", "nobody")}
    flags = [f"--kubeconfig={cluster.kubeconfig}", "--authorization=subjectaccessreview"]
    if static:
        flags.append(f"--keda-token={secrets.token_hex(16)}")
    # Prometheus is not needed: every answer past authorization is "no data yet" (503)
    server = MetricsServerProcess(tmp_path / "server", "http://127.0.0.1:9", *flags, http=False, grpc=False)
    try:
        def read(ns: str, bearer: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            return httpx.get(f"{server.https_url}/keda/v1/{ns}/dynamo_queue_depth", headers=headers,
                             verify=False, timeout=10)

        mine = read(namespace, token["keda-reader"])
        assert mine.status_code == 503 and "dynamo_queue_depth" in mine.text, mine.text  # authorized: no data
        theirs = read(other_namespace, token["keda-reader"])
        assert theirs.status_code == 403, theirs.text
        assert "keda-reader" in theirs.text and other_namespace in theirs.text
        assert read(namespace, token["nobody"]).status_code == 403
        assert read(namespace, None).status_code == 401
        assert read(namespace, token["keda-reader"][:-4] + "AAAA").status_code == 401
    finally:
        server.stop()
