"""The planner's control API on its production authentication path: a real `dynamo-scaling
planner` process without a static token checks every bearer token with TokenReview and every call
with SubjectAccessReview against the real API server, so callers get in through ordinary RBAC on
`planners.scaling.dynamo-scaling.io` (scaler/control/auth.py, the chart's view/edit roles)."""

from __future__ import annotations

import httpx
import pytest
from planner_process import PlannerProcess

pytestmark = pytest.mark.cluster


def planner_role(name: str, verbs: list[str], planner: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": [{"apiGroups": ["scaling.dynamo-scaling.io"], "resources": ["planners"],
                       "resourceNames": [planner], "verbs": verbs}]}


def binding(role: str, sa: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": f"{role}-{sa}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa}]}


def test_callers_are_authenticated_and_authorized_by_the_api_server(cluster, kubectl, namespace, prometheus, tmp_path):
    callers = ("operator", "viewer", "stranger", "elsewhere")
    kubectl.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}} for sa in callers]
                  + [planner_role("llama-edit", ["get", "update"], "llama"), binding("llama-edit", "operator"),
                     planner_role("llama-view", ["get"], "llama"), binding("llama-view", "viewer"),
                     # full rights, but on another planner's name
                     planner_role("other-edit", ["get", "update"], "other"), binding("other-edit", "elsewhere")],
                  namespace)
    token = {sa: kubectl("-n", namespace, "create", "token", sa, "--duration=10m").strip() for sa in callers}
    auth = {sa: {"Authorization": f"Bearer {t}"} for sa, t in token.items()}

    planner = PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, tmp_path).start()
    try:
        def get(who: str | None) -> httpx.Response:
            return httpx.get(planner.url + "/v1/status", headers=auth[who] if who else {}, timeout=10,
                             verify=planner.verify)

        def pin(who: str) -> httpx.Response:
            return httpx.put(planner.url + "/v1/overrides/decode", json={"replicas": 2, "reason": "auth test"},
                             headers=auth[who], timeout=10, verify=planner.verify)

        # no token, and a token the API server does not know: 401
        assert get(None).status_code == 401
        forged = httpx.get(planner.url + "/v1/status", timeout=10, verify=planner.verify,
                           headers={"Authorization": "Bearer " + token["operator"][:-4] + "AAAA"})
        assert forged.status_code == 401, forged.text
        # known callers without the right RBAC: 403, naming who and what
        for who in ("stranger", "elsewhere"):
            r = get(who)
            assert r.status_code == 403, r.text
            assert f"system:serviceaccount:{namespace}:{who} may not get planners" in r.json()["error"]
        # get only: may read, may not change
        assert get("viewer").status_code == 200
        r = pin("viewer")
        assert r.status_code == 403 and "may not update" in r.json()["error"], r.text
        # get and update: reads and changes, and the change is recorded under the caller's own name
        assert get("operator").status_code == 200
        r = pin("operator")
        assert r.status_code == 200, r.text
        assert r.json()["set_by"] == f"system:serviceaccount:{namespace}:operator"
        assert get("viewer").json()["overrides"]["decode"]["replicas"] == 2
        events = kubectl.json("-n", namespace, "get", "events")["items"]
        assert any(e["reason"] == "PlannerOverrideSet"
                   and f"(by system:serviceaccount:{namespace}:operator)" in e["message"] for e in events), events
    finally:
        planner.stop()


def test_a_configured_audience_admits_only_tokens_issued_for_it(cluster, kubectl, namespace, prometheus, tmp_path):
    kubectl.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
                   planner_role("llama-view", ["get"], "llama"), binding("llama-view", "operator")], namespace)
    for_planner = kubectl("-n", namespace, "create", "token", "operator", "--duration=10m",
                          "--audience=dynamo-planner").strip()
    for_api_server = kubectl("-n", namespace, "create", "token", "operator", "--duration=10m").strip()
    planner = PlannerProcess(cluster.kubeconfig, namespace, prometheus.url, tmp_path,
                             extra=("--token-audience", "dynamo-planner")).start()
    try:
        def get(token: str) -> httpx.Response:
            return httpx.get(planner.url + "/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                             verify=planner.verify)

        assert get(for_planner).status_code == 200
        # a token the API server accepts, but issued for the API server itself: replaying it here fails
        r = get(for_api_server)
        assert r.status_code == 401 and "dynamo-planner" in r.json()["error"], r.text
    finally:
        planner.stop()
