"""One scenario, all actors, all real: the planner scales prefill, an HPA on
`dynamo_kv_cache_usage` scales decode (the planner sees it and stays off), `kubectl scale`
sets a second deployment; load from the trace replayer rises and falls against real Dynamo
processes; each of our components is killed and restarted mid-scenario. Prints a timeline."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from helpers import wait_for

from devcluster.loadgen import run_load, synthetic
from devcluster.stack import LiveStack
from scaler.replay.traces import Request

pytestmark = pytest.mark.cluster

STARTUP_DELAY_S = 3
# Few KV blocks per decode worker, so that the peak fills them and the HPA has something to do
DECODE_BLOCKS = 400


def dgd(name: str, services: dict, annotations: dict | None = None) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": name, "annotations": {
                "devcluster.dynamo-scaling.io/startup-delay-seconds": str(STARTUP_DELAY_S), **(annotations or {})}},
            "spec": {"services": services}}


LLM = dgd("llm", {
    "Frontend": {"componentType": "frontend", "replicas": 1},
    "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 1,
                "scalingAdapter": {"enabled": True}},
    "decode": {"componentType": "worker", "subComponentType": "decode", "replicas": 1,
               "scalingAdapter": {"enabled": True}},
}, {"devcluster.dynamo-scaling.io/args-decode": f"--num-gpu-blocks-override {DECODE_BLOCKS}"})
SIDE = dgd("side", {
    "Frontend": {"componentType": "frontend", "replicas": 1},
    "worker": {"componentType": "worker", "replicas": 1, "scalingAdapter": {"enabled": True}},
})
HPA = {
    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "llm-decode"},
    "spec": {"scaleTargetRef": {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                                "name": "llm-decode"},
             "minReplicas": 1, "maxReplicas": 3,
             "metrics": [{"type": "External", "external": {
                 "metric": {"name": "dynamo_kv_cache_usage_sum",
                            "selector": {"matchLabels": {"dgd": "llm", "service": "decode"}}},
                 "target": {"type": "AverageValue", "averageValue": "500m"}}}],
             "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0},
                          "scaleDown": {"stabilizationWindowSeconds": 5,
                                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 5}]}}},
}


def planner_config(namespace: str, profile: str) -> dict:
    return {"deployment": {"name": "llm", "namespace": namespace, "prefill_service": "prefill",
                           "decode_service": "decode", "frontend_service": "Frontend"},
            "planner": {"interval_s": 2, "ttft_ms": 300, "itl_ms": 50, "predictor": "holt", "startup_s": 4,
                        "scale_down_hold_s": 8, "scale_down_step": 0.5, "peak_window_s": 0,
                        "min_prefill": 1, "max_prefill": 3, "min_decode": 1, "max_decode": 4},
            "profile_file": profile, "state_configmap": "llm-planner-state"}


def load_profile() -> list[Request]:
    """Low, a peak, low again: 15 s at 2/s, 40 s at 10/s, 25 s at 2/s. One decode worker with
    400 KV blocks holds about 23 of these requests and serves about 7/s."""
    out: list[Request] = []
    t0 = 0.0
    for rate, seconds in ((2, 15), (10, 40), (2, 25)):
        for r in synthetic(rate, seconds, input_length=1000, output_length=100):
            out.append(Request(t0 + r.timestamp_ms, r.input_length, r.output_length))
        t0 += seconds * 1000
    return out


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    rows: list[tuple[float, str, str]] = field(default_factory=list)
    last: dict[str, str] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)

    def event(self, actor: str, what: str) -> None:
        self.rows.append((time.monotonic() - self.start, actor, what))

    def sample(self, key: str, value) -> None:
        text = str(value)
        if self.last.get(key) != text:
            self.last[key] = text
            self.event(key, text)
        if isinstance(value, int):
            self.peak[key] = max(self.peak.get(key, 0), value)

    def print(self) -> None:
        print("\n--- timeline ---")
        for t, actor, what in self.rows:
            print(f"{t:7.1f}s  {actor:<22} {what}")


def replicas(kubectl, ns: str, dgd_name: str, svc: str) -> int:
    return int(kubectl.json("-n", ns, "get", "dgd", dgd_name)["spec"]["services"][svc].get("replicas", 1))


def ready_pods(kubectl, ns: str, dgd_name: str, svc: str) -> int:
    pods = kubectl.json("-n", ns, "get", "pods", "-l", f"nvidia.com/dynamo-graph-deployment-name={dgd_name},"
                        f"nvidia.com/dynamo-component={svc}")["items"]
    return sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", [])))


def dgd_ready(kubectl, ns: str, name: str) -> bool:
    conds = kubectl.json("-n", ns, "get", "dgd", name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def test_planner_hpa_and_kubectl_scale_their_own_services_through_restarts(
        cluster, kubectl, namespace, tmp_path, repo_root):
    stack = LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, namespace, STARTUP_DELAY_S)
    timeline = Timeline()
    stop_sampling = threading.Event()
    try:
        stack.start_prometheus()
        stack.start_standin()
        stack.start_adapter()
        stack.start_metrics_server()
        timeline.event("stack", "prometheus, stand-in (dynamo), adapter, metrics server up")
        kubectl.apply([LLM, SIDE], namespace)
        wait_for(lambda: dgd_ready(kubectl, namespace, "llm") and dgd_ready(kubectl, namespace, "side"),
                 timeout=90, what="both DGDs Ready")
        wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llm-decode", "llm-prefill", "side-worker",
                                     check=False).returncode == 0, timeout=30, what="adapters")
        kubectl.apply([HPA], namespace)
        stack.start_planner(planner_config(namespace, str(repo_root / "scaler" / "data" / "mocker_profile.json")))
        planner_url = f"http://127.0.0.1:{stack.planner_port}"
        auth = {"Authorization": f"Bearer {stack.planner_token}"}
        timeline.event("stack", "HPA on llm-decode, planner on llm")

        kubectl("-n", namespace, "scale", "dgdsa", "side-worker", "--replicas=2")
        timeline.event("kubectl", "scale dgdsa side-worker --replicas=2")

        url = wait_for(lambda: stack.frontend_url("llm"), what="frontend address")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model served")

        def sampler() -> None:
            while not stop_sampling.is_set():
                try:
                    for dgd_name, svc in (("llm", "prefill"), ("llm", "decode"), ("side", "worker")):
                        timeline.sample(f"{dgd_name}/{svc}", replicas(kubectl, namespace, dgd_name, svc))
                    hpa = kubectl.json("-n", namespace, "get", "hpa", "llm-decode").get("status", {})
                    cur = (hpa.get("currentMetrics") or [{}])[0].get("external", {}).get("current", {})
                    timeline.sample("hpa kv usage/replica", cur.get("averageValue", "-"))
                    st = httpx.get(f"{planner_url}/v1/status", headers=auth, timeout=2).json()
                    planned = (st.get("last_decision") or {}).get("planned", {})
                    timeline.sample("planner plans", ", ".join(f"{k}={v}" for k, v in sorted(planned.items())))
                except Exception as exc:  # a sample lost to a restart is not a test failure
                    timeline.sample("sampler", f"error: {exc}")
                stop_sampling.wait(1.0)

        threading.Thread(target=sampler, daemon=True).start()

        result: dict = {}

        def drive_load() -> None:
            result["load"] = asyncio.run(run_load(url, load_profile(), progress_every_s=10))

        loader = threading.Thread(target=drive_load)
        loader.start()
        timeline.event("load", "start: 2/s for 15 s, 10/s for 40 s, 2/s for 25 s")
        # kill and restart each component at its moment of the peak
        t_load = time.monotonic()
        for at, name in ((20, "adapter"), (32, "metrics-server"), (44, "planner")):
            time.sleep(max(0.0, at - (time.monotonic() - t_load)))
            stack.kill(name)
            timeline.event(name, "killed (SIGKILL)")
            time.sleep(2)
            stack.components[name].start()
            timeline.event(name, "restarted")
        loader.join(240)
        summary = result["load"][0]
        timeline.event("load", summary.line())

        # the load is gone: the HPA brings decode back down, the planner prefill
        wait_for(lambda: replicas(kubectl, namespace, "llm", "decode") == 1, timeout=120, interval=1,
                 what="HPA scaled decode back to 1")
        status = wait_for(lambda: (s := httpx.get(f"{planner_url}/v1/status", headers=auth, timeout=5).json())
                          and s.get("last_decision") and s, timeout=30, what="planner status")
        wait_for(lambda: replicas(kubectl, namespace, "llm", "prefill") ==
                 httpx.get(f"{planner_url}/v1/status", headers=auth).json()["targets"]["prefill"],
                 timeout=60, interval=1, what="prefill at the planner's target")
        stop_sampling.set()
        time.sleep(1.5)
        timeline.event("end", "converged")
        timeline.print()

        # no request failed, through scale-ups, scale-downs and restarts
        assert summary.requests == len(load_profile())
        assert summary.failed == 0, summary.errors
        # the HPA really scaled decode on KV usage during the peak
        assert timeline.peak["llm/decode"] >= 2, timeline.rows
        # every service ends where its own scaler put it
        hpa = kubectl.json("-n", namespace, "get", "hpa", "llm-decode")
        assert replicas(kubectl, namespace, "llm", "decode") == hpa["status"]["desiredReplicas"] == 1
        status = httpx.get(f"{planner_url}/v1/status", headers=auth).json()
        assert replicas(kubectl, namespace, "llm", "prefill") == status["targets"]["prefill"]
        assert "decode not written: also scaled by" in status["last_decision"]["reason"]
        assert replicas(kubectl, namespace, "side", "worker") == 2
        for dgd_name, svc in (("llm", "prefill"), ("llm", "decode"), ("side", "worker")):
            assert kubectl.json("-n", namespace, "get", "dgdsa", f"{dgd_name}-{svc}")["spec"]["replicas"] == \
                replicas(kubectl, namespace, dgd_name, svc)
            wait_for(lambda: ready_pods(kubectl, namespace, dgd_name, svc) == replicas(kubectl, namespace, dgd_name, svc),
                     timeout=30, what=f"{dgd_name}/{svc} pods match")
        assert all(stack.components[n].starts == 2 for n in ("adapter", "metrics-server", "planner"))
    finally:
        stop_sampling.set()
        kubectl.run("-n", namespace, "delete", "hpa", "llm-decode", "--ignore-not-found", check=False)
        stack.close()
