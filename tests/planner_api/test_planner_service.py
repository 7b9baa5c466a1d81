"""`dynamo-scaling planner` as a real process against the real control plane and a real
Prometheus: writes through DGDSA /scale, honours overrides, pause, advisory and other scalers."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import yaml
from helpers import wait_for

from devcluster.procs import free_port
from devcluster.prometheus import Prometheus

pytestmark = pytest.mark.cluster
TOKEN = "planner-test-token-0123456789abcdef"

DGD = {
    "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
    "spec": {"services": {
        "Frontend": {"componentType": "frontend", "replicas": 1},
        "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 3,
                    "scalingAdapter": {"enabled": True}},
        "decode": {"componentType": "worker", "subComponentType": "decode", "replicas": 2,
                   "scalingAdapter": {"enabled": True}},
    }},
}


def _adapter(svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"llama-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": "llama", "serviceName": svc}}}


@pytest.fixture()
def prometheus(tmp_path):
    with Prometheus(tmp_path / "prom") as p:
        yield p


def _start(cluster, namespace, tmp_path, prom_url, *extra, deployment: dict | None = None
           ) -> tuple[subprocess.Popen, str]:
    cfg = {"deployment": {"name": "llama", "namespace": namespace, "prefill_service": "prefill",
                          "decode_service": "decode", **(deployment or {})},
           "planner": {"interval_s": 1, "scale_down_hold_s": 0, "scale_down_step": 0.5, "startup_s": 1,
                       "peak_window_s": 0}}
    (tmp_path / "planner.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "token").write_text(TOKEN)
    port = free_port()
    log = open(tmp_path / "planner.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dynamo_scaling.cli", "planner", "--config", str(tmp_path / "planner.yaml"),
         "--kubeconfig", str(cluster.kubeconfig), "--prometheus-url", prom_url, "--api-port", str(port),
         "--static-token-file", str(tmp_path / "token"), *extra], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(url), timeout=30, what="planner API")
    return proc, url


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _spec(kubectl, ns: str, svc: str) -> int:
    return kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]


def test_idle_deployment_scales_to_minimum_and_overrides_win(cluster, kubectl, namespace, standin, prometheus, tmp_path):
    kubectl.apply(DGD, namespace)
    kubectl.apply([_adapter("prefill", 3), _adapter("decode", 2)], namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama").get("status", {}).get("state") == "successful",
             what="DGD ready")
    proc, url = _start(cluster, namespace, tmp_path, prometheus.url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        # no traffic at all: both pools go to their minimum, one step at a time
        wait_for(lambda: _spec(kubectl, namespace, "prefill") == 1 and _spec(kubectl, namespace, "decode") == 1,
                 timeout=30, what="pools at minimum")
        managers = {m["manager"] for m in kubectl.json("-n", namespace, "get", "dgdsa", "llama-prefill",
                                                       "--show-managed-fields")["metadata"]["managedFields"]}
        assert "dynamo-scaling-planner" in managers
        st = httpx.get(url + "/v1/status", headers=auth).json()
        assert st["targets"] == {"prefill": 1, "decode": 1} and st["last_error"] is None

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


def test_advisory_and_other_scalers_are_left_alone(cluster, kubectl, namespace, standin, prometheus, tmp_path):
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
