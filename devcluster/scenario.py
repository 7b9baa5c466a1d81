"""The live scenario shared by the end-to-end test and `dynamo-scaling devcluster demo`.

Two DGDs served by real Dynamo processes. In `llm` the planner drives prefill and an HPA on
`dynamo_kv_cache_usage_sum` drives decode: the planner plans decode too, sees the HPA on that
adapter and reports it instead of writing. `side` is scaled by hand (`kubectl scale dgdsa`).
The load rises and falls; with `chaos`, the adapter, the metrics server and the planner are
each killed (SIGKILL) and restarted during the peak.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devcluster.kubectl import Kubectl, KubectlError
from devcluster.loadgen import Summary, run_load, synthetic
from devcluster.manifests import dgd, disaggregated, external_hpa
from devcluster.stack import LiveStack, StackError
from dynamo_scaling.traces import Request

STARTUP_DELAY_S = 3
# few KV blocks per decode worker, so that the peak fills them and the HPA has work to do
DECODE_BLOCKS = 1600
PHASES = ((2, 15), (10, 40), (2, 25))  # (requests per second, seconds)
CHAOS = ((20, "adapter"), (32, "metrics-server"), (44, "planner"))  # (seconds into the load, component)
SCALED = (("llm", "prefill", "planner"), ("llm", "decode", "HPA"), ("side", "worker", "kubectl"))


LLM = dgd("llm", disaggregated(), STARTUP_DELAY_S,
          {"devcluster.dynamo-scaling.io/args-decode": f"--num-gpu-blocks-override {DECODE_BLOCKS}"})
SIDE = dgd("side", {"Frontend": {"componentType": "frontend", "replicas": 1},
                    "worker": {"componentType": "worker", "replicas": 1, "scalingAdapter": {"enabled": True}}},
           STARTUP_DELAY_S)
HPA = external_hpa("llm-decode", "llm-decode", "dynamo_kv_cache_usage_sum", "500m", {"dgd": "llm", "service": "decode"},
                   max_replicas=3, behavior={
                       "scaleUp": {"stabilizationWindowSeconds": 0},
                       "scaleDown": {"stabilizationWindowSeconds": 5,
                                     "policies": [{"type": "Pods", "value": 1, "periodSeconds": 5}]}})
MOCKER_PROFILE = Path(__file__).resolve().parents[1] / "scaler" / "data" / "mocker_profile.json"


def planner_config(namespace: str) -> dict:
    return {"deployment": {"name": "llm", "namespace": namespace, "prefill_service": "prefill",
                           "decode_service": "decode", "frontend_service": "Frontend"},
            "planner": {"interval_s": 2, "ttft_ms": 300, "itl_ms": 50, "predictor": "holt", "startup_s": 4,
                        "scale_down_hold_s": 8, "scale_down_step": 0.5, "peak_window_s": 0,
                        # the load generator's arrivals are Poisson (load_profile): no clumping to size for
                        "arrival_ca2": 1.0,
                        "min_prefill": 1, "max_prefill": 3, "min_decode": 1, "max_decode": 4},
            "profile_file": str(MOCKER_PROFILE), "state_configmap": "llm-planner-state"}


def load_profile() -> list[Request]:
    """Low, a peak, low again. One decode worker with DECODE_BLOCKS blocks holds about 23 of
    these requests and serves about 7 per second."""
    out: list[Request] = []
    t0 = 0.0
    for rate, seconds in PHASES:
        for r in synthetic(rate, seconds, input_length=4000, output_length=100):
            out.append(Request(t0 + r.timestamp_ms, r.input_length, r.output_length))
        t0 += seconds * 1000
    return out


@dataclass
class Timeline:
    on_event: Callable[[float, str, str], None] | None = None
    start: float = field(default_factory=time.monotonic)
    rows: list[tuple[float, str, str]] = field(default_factory=list)
    last: dict[str, str] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)

    def event(self, actor: str, what: str) -> None:
        row = (time.monotonic() - self.start, actor, what)
        self.rows.append(row)
        if self.on_event:
            self.on_event(*row)

    def sample(self, key: str, value) -> None:
        text = str(value)
        if self.last.get(key) != text:
            self.last[key] = text
            self.event(key, text)
        if isinstance(value, int):
            self.peak[key] = max(self.peak.get(key, 0), value)

    def text(self) -> str:
        return "\n".join(f"{t:7.1f}s  {actor:<22} {what}" for t, actor, what in self.rows)


def replicas(kubectl: Kubectl, ns: str, dgd_name: str, svc: str) -> int:
    return int(kubectl.json("-n", ns, "get", "dgd", dgd_name)["spec"]["services"][svc].get("replicas", 1))


def ready_pods(kubectl: Kubectl, ns: str, dgd_name: str, svc: str) -> int:
    pods = kubectl.json("-n", ns, "get", "pods", "-l", f"nvidia.com/dynamo-graph-deployment-name={dgd_name},"
                        f"nvidia.com/dynamo-component={svc}")["items"]
    return sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", [])))


def dgd_ready(kubectl: Kubectl, ns: str, name: str) -> bool:
    conds = kubectl.json("-n", ns, "get", "dgd", name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def wait(check: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll `check` until it answers truthy. Errors of an API not serving yet are waited out (kubectl
    can meet a resource type the apiserver does not serve for a moment after its CRD changes)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, ValueError, KeyError, KubectlError) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(interval_s)
    raise StackError(f"timed out after {timeout_s:.0f} s waiting for {what}"
                     + (f" (last error: {last})" if last is not None else ""))


@dataclass
class Result:
    summary: Summary
    timeline: Timeline
    planner_status: dict
    hpa: dict


class Scenario:
    def __init__(self, stack: LiveStack, on_event: Callable[[float, str, str], None] | None = None,
                 chaos: bool = True) -> None:
        self.stack, self.kubectl, self.ns = stack, stack.kubectl, stack.namespace
        self.chaos = chaos
        self.timeline = Timeline(on_event)
        self._stop = threading.Event()

    @property
    def planner_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.planner_port}"

    def planner_status(self) -> dict:
        r = httpx.get(f"{self.planner_url}/v1/status", timeout=5,
                      headers={"Authorization": f"Bearer {self.stack.planner_token}"})
        r.raise_for_status()
        return r.json()

    def setup(self) -> str:
        """Start everything and apply the objects; return the llm frontend's URL."""
        s, k, tl = self.stack, self.kubectl, self.timeline
        s.start_prometheus()
        s.start_standin()
        s.start_adapter()
        s.start_metrics_server()
        tl.event("stack", "prometheus, stand-in (real Dynamo), adapter, metrics server up")
        k.apply([LLM, SIDE], self.ns)
        wait(lambda: dgd_ready(k, self.ns, "llm") and dgd_ready(k, self.ns, "side"), 90, "both DGDs Ready")
        wait(lambda: k.run("-n", self.ns, "get", "dgdsa", "llm-decode", "llm-prefill", "side-worker",
                           check=False).returncode == 0, 30, "the scaling adapters")
        k.apply([HPA], self.ns)
        s.start_planner(planner_config(self.ns))
        tl.event("stack", "HPA on llm-decode (KV usage), planner on llm")
        k("-n", self.ns, "scale", "dgdsa", "side-worker", "--replicas=2")
        tl.event("kubectl", "scale dgdsa side-worker --replicas=2")
        url = wait(lambda: s.frontend_url("llm"), 30, "the frontend's address")
        wait(lambda: httpx.get(f"{url}/v1/models", timeout=2).json()["data"], 30, "the model to be served")
        return url

    def _sample(self) -> None:
        tl = self.timeline
        while not self._stop.is_set():
            try:
                for dgd_name, svc, _ in SCALED:
                    tl.sample(f"{dgd_name}/{svc}", replicas(self.kubectl, self.ns, dgd_name, svc))
                hpa = self.kubectl.json("-n", self.ns, "get", "hpa", "llm-decode").get("status", {})
                cur = (hpa.get("currentMetrics") or [{}])[0].get("external", {}).get("current", {})
                tl.sample("hpa kv usage/replica", cur.get("averageValue", "-"))
                planned = (self.planner_status().get("last_decision") or {}).get("planned", {})
                tl.sample("planner plans", ", ".join(f"{k}={v}" for k, v in sorted(planned.items())))
            except Exception as exc:  # a sample lost while a component restarts is expected
                tl.sample("sampler", f"unavailable ({type(exc).__name__})")
            self._stop.wait(1.0)

    def run(self) -> Result:
        url = self.setup()
        tl = self.timeline
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        result: dict = {}
        loader = threading.Thread(target=lambda: result.setdefault(
            "load", asyncio.run(run_load(url, load_profile(), progress_every_s=10))))
        try:
            loader.start()
            tl.event("load", "start: " + ", then ".join(f"{r}/s for {s} s" for r, s in PHASES))
            t_load = time.monotonic()
            for at, name in CHAOS if self.chaos else ():
                time.sleep(max(0.0, at - (time.monotonic() - t_load)))
                self.stack.kill(name)
                tl.event(name, "killed (SIGKILL)")
                time.sleep(2)
                self.stack.components[name].start()
                tl.event(name, "restarted")
            loader.join()
            summary = result["load"][0]
            tl.event("load", summary.line())
            # the load is gone: the HPA brings decode back down, the planner holds prefill at its target
            wait(lambda: replicas(self.kubectl, self.ns, "llm", "decode") == 1, 120, "decode back to 1", 1)
            wait(lambda: replicas(self.kubectl, self.ns, "llm", "prefill")
                 == self.planner_status()["targets"]["prefill"], 60, "prefill at the planner's target", 1)
        finally:
            self._stop.set()
            sampler.join(5)
        tl.event("end", "every service at the replicas its scaler chose")
        return Result(summary, tl, self.planner_status(), self.kubectl.json("-n", self.ns, "get", "hpa", "llm-decode"))
