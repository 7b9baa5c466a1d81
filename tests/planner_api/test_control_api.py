"""The planner's override API over real HTTP, authenticated and authorized by the real API server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import uvicorn

from devcluster.procs import free_port
from scaler.control.api import ControlService, create_app
from scaler.control.audit import Audit
from scaler.control.auth import KubernetesAuthorizer, StaticTokenAuthorizer
from scaler.control.state import SLATargets
from scaler.control.store import ConfigMapStore

pytestmark = pytest.mark.cluster
PLANNER = "llama-planner"
SERVICES = ["prefill", "decode"]


def _rbac(ns: str) -> list[dict]:
    def role(name: str, verbs: list[str]) -> dict:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
                "rules": [{"apiGroups": ["scaling.dynamo-scaling.io"], "resources": ["planners"],
                           "resourceNames": [PLANNER], "verbs": verbs}]}

    def bind(sa: str, r: str) -> dict:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": sa},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": r},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}

    sas = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n}} for n in ("reader", "writer", "nobody")]
    return [*sas, role("planner-read", ["get"]), role("planner-write", ["get", "update"]),
            bind("reader", "planner-read"), bind("writer", "planner-write")]


class Server:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _service(kube_api, ns: str) -> ControlService:
    store = ConfigMapStore(kube_api, ns, f"{PLANNER}-control")
    state = store.load(SLATargets(ttft_ms=500, itl_ms=50))
    audit = Audit(kube_api, ns, {"api_version": "v1", "kind": "ConfigMap", "name": f"{PLANNER}-control"})
    return ControlService(state, store.save, audit, status=lambda: {"planner": PLANNER, "targets": {"prefill": 2}},
                          services=lambda: SERVICES)


@pytest.fixture()
def tokens(kubectl, namespace) -> dict[str, str]:
    kubectl.apply(_rbac(namespace), namespace)
    return {sa: kubectl("-n", namespace, "create", "token", sa).strip() for sa in ("reader", "writer", "nobody")}


def test_authentication_and_authorization(kube_api, namespace, tokens):
    auth = KubernetesAuthorizer(kube_api, namespace, PLANNER)
    with Server(create_app(_service(kube_api, namespace), auth)) as url, httpx.Client(base_url=url) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/v1/status")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/status", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        nobody = {"Authorization": f"Bearer {tokens['nobody']}"}
        r = c.get("/v1/status", headers=nobody)
        assert r.status_code == 403 and "nobody" in r.json()["error"]
        reader = {"Authorization": f"Bearer {tokens['reader']}"}
        r = c.get("/v1/status", headers=reader)
        assert r.status_code == 200 and r.json()["targets"] == {"prefill": 2} and r.json()["paused"] is False
        assert c.post("/v1/pause", headers=reader).status_code == 403
        assert c.put("/v1/overrides/decode", json={"replicas": 3}, headers=reader).status_code == 403


def test_overrides_sla_pause_advisory_persist_and_audit(kube_api, kubectl, namespace, tokens):
    auth = KubernetesAuthorizer(kube_api, namespace, PLANNER)
    writer = {"Authorization": f"Bearer {tokens['writer']}"}
    with Server(create_app(_service(kube_api, namespace), auth)) as url, httpx.Client(base_url=url, headers=writer) as c:
        r = c.put("/v1/overrides/decode", json={"min_replicas": 2, "max_replicas": 6, "reason": "launch day"})
        assert r.status_code == 200 and r.json()["set_by"] == f"system:serviceaccount:{namespace}:writer"
        assert c.put("/v1/overrides/prefill", json={"replicas": 4, "expires_at": "2099-01-01T00:00:00Z"}).status_code == 200
        assert c.put("/v1/sla", json={"ttft_ms": 300, "itl_ms": 25}).json() == {"ttft_ms": 300, "itl_ms": 25}
        assert c.post("/v1/pause").json()["paused"] is True
        assert c.post("/v1/advisory", json={"enabled": True}).json()["advisory"] is True
        assert c.post("/v1/resume").json()["paused"] is False

    cm = kubectl.json("-n", namespace, "get", "configmap", f"{PLANNER}-control")
    saved = json.loads(cm["data"]["control.json"])
    assert saved["overrides"]["decode"]["max_replicas"] == 6 and saved["sla"]["ttft_ms"] == 300

    # a new planner process starts from what was saved
    with Server(create_app(_service(kube_api, namespace), auth)) as url, httpx.Client(base_url=url, headers=writer) as c:
        st = c.get("/v1/status").json()
        assert st["overrides"]["prefill"]["replicas"] == 4 and st["advisory"] is True and st["sla"]["itl_ms"] == 25
        assert c.delete("/v1/overrides/prefill").status_code == 204
        assert c.delete("/v1/overrides/prefill").status_code == 404
        assert "prefill" not in c.get("/v1/status").json()["overrides"]

    events = kubectl.json("-n", namespace, "get", "events")["items"]
    reasons = {e["reason"] for e in events}
    assert {"PlannerOverrideSet", "PlannerSLAChanged", "PlannerPaused", "PlannerOverrideRemoved"} <= reasons
    assert any("writer" in e["message"] for e in events)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/overrides/decode", {"min_replicas": 5, "max_replicas": 2}, "min_replicas must be <= max_replicas"),
        ("/v1/overrides/decode", {"replicas": -1}, "replicas"),
        ("/v1/overrides/decode", {}, "set at least one"),
        ("/v1/overrides/decode", {"replicas": 2, "bogus": 1}, "bogus"),
        ("/v1/overrides/decode", {"replicas": 2, "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ("/v1/sla", {"ttft_ms": 0, "itl_ms": 50}, "ttft_ms"),
        ("/v1/advisory", {"enabled": "maybe"}, "enabled"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(kube_api, namespace, path, body, field):
    svc = _service(kube_api, namespace)
    auth = StaticTokenAuthorizer("local-test-token-0123456789")
    with Server(create_app(svc, auth)) as url, httpx.Client(
            base_url=url, headers={"Authorization": "Bearer local-test-token-0123456789"}) as c:
        r = c.put(path, json=body) if path != "/v1/advisory" else c.post(path, json=body)
        assert r.status_code == 422
        assert field in json.dumps(r.json())
        st = c.get("/v1/status").json()
        assert st["overrides"] == {} and st["sla"] == {"ttft_ms": 500, "itl_ms": 50} and st["advisory"] is False
        assert c.put("/v1/overrides/not-a-service", json={"replicas": 1}).status_code == 404


def test_static_token_must_be_long_enough():
    with pytest.raises(ValueError, match="at least 16"):
        StaticTokenAuthorizer("short")


def test_a_change_that_cannot_be_stored_is_refused_with_503_and_leaves_state_untouched(kube_api, kubectl, namespace):
    """The real store writes into a namespace that is gone: the caller hears 503, and the override
    is neither in effect nor in /v1/status afterwards."""
    gone = f"{namespace}-gone"
    kubectl("create", "namespace", gone)
    service = _service(kube_api, gone)
    kubectl("delete", "namespace", gone, "--wait=true")
    auth = StaticTokenAuthorizer("local-test-token-0123456789")
    headers = {"Authorization": "Bearer local-test-token-0123456789"}
    with Server(create_app(service, auth)) as url, httpx.Client(base_url=url, headers=headers) as c:
        r = c.put("/v1/overrides/decode", json={"replicas": 5})
        assert r.status_code == 503 and "could not persist" in r.json()["error"], r.text
        assert c.get("/v1/status").json()["overrides"] == {}
        assert service.state.overrides == {}
        r = c.post("/v1/pause")
        assert r.status_code == 503 and c.get("/v1/status").json()["paused"] is False
