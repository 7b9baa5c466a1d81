"""`dynamo-scaling planner` as a real process against the real control plane and a real
Prometheus: writes through DGDSA /scale, honours overrides, pause, advisory and other scalers, and
holds a pool whose data is missing instead of reading the absence as idle."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import yaml
from helpers import wait_for
from planner_support import DGD, IdleDeployment, decisions, metric, worker_series

from devcluster import launch
from devcluster.prometheus import Prometheus

pytestmark = pytest.mark.cluster
TOKEN = "planner-test-token-0123456789abcdef"

def _adapter(svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"llama-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": "llama", "serviceName": svc}}}


@pytest.fixture()
def prometheus(tmp_path):
    with Prometheus(tmp_path / "prom") as p:
        yield p


@pytest.fixture()
def idle(prometheus, namespace, tmp_path):
    """The deployment's frontend and workers, idle: their series are present and flat."""
    dep = IdleDeployment(prometheus, tmp_path / "exporters", namespace)
    yield dep
    dep.stop()


def _start(cluster, namespace, tmp_path, prom_url, *extra, deployment: dict | None = None
           ) -> tuple[subprocess.Popen, str]:
    cfg = {"deployment": {"name": "llama", "namespace": namespace, "prefill_service": "prefill",
                          "decode_service": "decode", **(deployment or {})},
           "planner": {"interval_s": 1, "scale_down_hold_s": 0, "scale_down_step": 0.5, "startup_s": 1,
                       "peak_window_s": 0},
           "signals": {"preset": "dgd-labels"},  # the exporters' series carry dgd/service labels
           "profile_file": "bundled"}  # sized with the mocker's profile; without one the planner fits online
    (tmp_path / "planner.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "token").write_text(TOKEN)
    planner = launch.planner(cluster.kubeconfig, tmp_path / "planner.yaml", prom_url, tmp_path / "planner.log",
                             static_token_file=tmp_path / "token", insecure_http=True, extra=extra).start(timeout_s=30)
    return planner.proc, f"http://127.0.0.1:{planner.ports['api']}"


def _start_on_ready_dgd(cluster, kubectl, namespace, tmp_path, prom_url) -> tuple[subprocess.Popen, str]:
    """The DGD llama with adapters at 3 prefill / 2 decode, Ready by the stand-in, then the planner."""
    kubectl.apply(DGD, namespace)
    kubectl.apply([_adapter("prefill", 3), _adapter("decode", 2)], namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state") == "successful",
             what="DGD ready")
    return _start(cluster, namespace, tmp_path, prom_url)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _spec(kubectl, ns: str, svc: str) -> int:
    return kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]


def test_idle_deployment_scales_to_minimum_and_overrides_win(cluster, kubectl, namespace, standin, prometheus, idle,
                                                             tmp_path):
    proc, url = _start_on_ready_dgd(cluster, kubectl, namespace, tmp_path, prometheus.url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        # a present and flat request counter: both pools go to their minimum, one step at a time
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1 and _spec(kubectl, namespace, "decode") == 1,
                 timeout=30, what="pools at minimum")
        managers = {m["manager"] for m in kubectl.json("-n", namespace, "get", "dgdsa", "llama-prefill",
                                                       "--show-managed-fields")["metadata"]["managedFields"]}
        assert "dynamo-scaling-planner" in managers
        st = httpx.get(url + "/v1/status", headers=auth).json()
        assert st["targets"] == {"prefill": 1, "decode": 1} and st["last_error"] is None
        assert st["last_decision"]["outcome"] == "planned"

        r = httpx.put(url + "/v1/overrides/prefill", json={"replicas": 2, "reason": "test"}, headers=auth)
        assert r.status_code == 200
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 2, timeout=15, what="override applied")

        assert httpx.post(url + "/v1/pause", headers=auth).json()["paused"] is True
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=4")
        hist = wait_for(lambda: [d for d in httpx.get(url + "/v1/decisions", headers=auth).json()["items"]
                                 if "paused" in d["reason"]], timeout=15, what="paused decision")
        assert hist[0]["applied"] is False
        assert _spec(kubectl, namespace, "decode") == 4  # nobody fought the manual change while paused
        metrics = httpx.get(url + "/metrics").text
        assert 'dynamo_planner_target_replicas{service="prefill"} 2.0' in metrics
    finally:
        _stop(proc)

    # restart: the override is still there and still applied
    proc, url = _start(cluster, namespace, tmp_path, prometheus.url)
    try:
        st = httpx.get(url + "/v1/status", headers=auth).json()
        assert st["overrides"]["prefill"]["replicas"] == 2 and st["paused"] is True
        assert httpx.post(url + "/v1/resume", headers=auth).status_code == 200
        wait_for(lambda: _spec(kubectl, namespace, "decode") < 4, timeout=20, what="planner resumes")
        assert _spec(kubectl, namespace, "prefill") == 2
    finally:
        _stop(proc)


def test_advisory_and_other_scalers_are_left_alone(cluster, kubectl, namespace, standin, prometheus, idle, tmp_path):
    kubectl.apply(DGD, namespace)
    kubectl.apply([_adapter("prefill", 3), _adapter("decode", 2)], namespace)
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "decode-hpa"},
           "spec": {"scaleTargetRef": {"apiVersion": "nvidia.com/v1alpha1",
                                       "kind": "DynamoGraphDeploymentScalingAdapter", "name": "llama-decode"},
                    "minReplicas": 1, "maxReplicas": 8,
                    "metrics": [{"type": "External", "external": {
                        "metric": {"name": "dynamo_queue_depth"},
                        "target": {"type": "AverageValue", "averageValue": "2"}}}]}}
    kubectl.apply(hpa, namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state") == "successful",
             what="DGD ready")
    proc, url = _start(cluster, namespace, tmp_path, prometheus.url, "--advisory")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        items = wait_for(lambda: httpx.get(url + "/v1/decisions", headers=auth).json()["items"], timeout=20,
                         what="a decision")
        assert "advisory" in items[0]["reason"] and items[0]["targets"]["prefill"] < 3
        assert _spec(kubectl, namespace, "prefill") == 3
        assert httpx.post(url + "/v1/advisory", json={"enabled": False}, headers=auth).status_code == 200
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1, timeout=20, what="writes after advisory off")
        reasons = [d["reason"] for d in httpx.get(url + "/v1/decisions", headers=auth).json()["items"]]
        assert any("decode not written: also scaled by HorizontalPodAutoscaler/decode-hpa" in r for r in reasons)
        assert _spec(kubectl, namespace, "decode") == 2  # the HPA's adapter is not touched
    finally:
        _stop(proc)


def _held_since(url: str, svc: str, n: int) -> list[dict]:
    """Decisions of the last `n` that held `svc` for missing data, if all of them did."""
    items = decisions(url)[-n:]
    return items if len(items) == n and all(svc in d["reason"] and d["outcome"] == "held_missing_data"
                                            for d in items) else []


def _events(kubectl, ns: str, reason: str) -> list[dict]:
    return kubectl.json("-n", ns, "get", "events", "--field-selector", f"reason={reason}")["items"]


def test_missing_data_holds_the_pool_and_planning_resumes(cluster, kubectl, namespace, standin, prometheus, idle,
                                                          tmp_path):
    proc, url = _start_on_ready_dgd(cluster, kubectl, namespace, tmp_path, prometheus.url)
    try:
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1 and _spec(kubectl, namespace, "decode") == 1,
                 timeout=30, what="idle pools at minimum")

        # the decode workers report NaN: not a number is no data, decode is held until it is a number
        idle.workers.set(worker_series("prefill") + [{**s, "value": "NaN"} for s in worker_series("decode")])
        wait_for(lambda: _held_since(url, "decode", 1), timeout=30, what="decode held on NaN")
        idle.workers.set(worker_series("prefill", "decode"))
        wait_for(lambda: decisions(url)[-1]["outcome"] == "planned", timeout=30, what="decode planned again")

        # the decode workers' series go away: decode is held, prefill is still planned
        idle.workers.set(worker_series("prefill"))
        wait_for(lambda: _held_since(url, "decode", 1), timeout=30, what="decode held")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=3")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-prefill", "--replicas=2")
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1, timeout=30, what="prefill still planned")
        # three further decisions, all holding decode, and decode was never shrunk
        n = len(decisions(url))
        wait_for(lambda: len(decisions(url)) >= n + 3, timeout=30, what="three more decisions")
        assert _held_since(url, "decode", 3) and _spec(kubectl, namespace, "decode") == 3
        assert metric(url, 'dynamo_planner_held_missing_data{service="decode"}') == 1
        # per service: prefill is planned (a tick that missed a scrape under load may hold it once)
        wait_for(lambda: metric(url, 'dynamo_planner_held_missing_data{service="prefill"}') == 0, timeout=30,
                 what="prefill not held")
        ev = wait_for(lambda: _events(kubectl, namespace, "PlannerHeldMissingData"), timeout=15, what="event")
        assert ev[0]["involvedObject"]["name"] == "llama" and ev[0]["type"] == "Warning"
        assert "decode held at" in ev[0]["message"]

        # the frontend's scrape target goes away too: no traffic data, both pools are held
        idle.frontend_up(False)
        wait_for(lambda: _held_since(url, "dynamo_request_rate", 1), timeout=30, what="traffic missing")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-prefill", "--replicas=3")
        n = len(decisions(url))
        wait_for(lambda: len(decisions(url)) >= n + 3, timeout=30, what="three more decisions")
        assert _held_since(url, "prefill kept at 3", 3)
        assert _spec(kubectl, namespace, "prefill") == 3 and _spec(kubectl, namespace, "decode") == 3
        assert metric(url, "dynamo_planner_missing_data_holds_total") >= 6
        st = httpx.get(url + "/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert set(st["held"]) == {"prefill", "decode"}

        # data is back: planning resumes and the idle pools go to their minimum again
        idle.frontend_up(True)
        idle.workers.set(worker_series("prefill", "decode"))
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1 and _spec(kubectl, namespace, "decode") == 1,
                 timeout=30, what="planning resumed")
        assert decisions(url)[-1]["outcome"] == "planned"
        assert metric(url, 'dynamo_planner_held_missing_data{service="decode"}') == 0
        wait_for(lambda: _events(kubectl, namespace, "PlannerResumedWithData"), timeout=15, what="resumed event")
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("planner", "message"),
    [
        ({"quantile": 0.7}, "planner.quantile: Input should be 0.5, 0.8, 0.9, 0.95 or 0.99"),
        ({"min_prefill": 5, "max_prefill": 2}, "min_prefill must be <= max_prefill"),
        ({"interval_s": -1}, "planner.interval_s"),
        ({"bogus": 1}, "planner.bogus: Extra inputs are not permitted"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, planner, message):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({
        "deployment": {"name": "llama", "namespace": "ns", "prefill_service": "p", "decode_service": "d"},
        "planner": planner}))
    res = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "planner", "--config", str(tmp_path / "bad.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and message in res.stderr, res.stderr
