"""A DGD served by real Dynamo processes: completions through the frontend, series in a real
Prometheus, `kubectl scale dgdsa` starting and draining real mocker workers under load."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading

import httpx
from helpers import wait_for

from devcluster import manifests
from devcluster.scenario import dgd_ready
from devcluster.dynamo.model import MODEL_NAME, prompt_of
from devcluster.dynamo.processes import pids_using, registered_instances
from devcluster.loadgen import run_load, synthetic
from external_metrics.dynamo_names import DYNAMO_METRICS

STARTUP_DELAY_S = 3


def exported_names(exposition: str) -> set[str]:
    """Metric names in a Prometheus text exposition, histogram suffixes folded into the family."""
    names = set()
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M):
        names.add(re.sub(r"_(bucket|sum|count)$", "", m.group(1)))
        names.add(m.group(1))
    return names


def dgd(name: str) -> dict:
    return manifests.dgd(name, manifests.disaggregated(), STARTUP_DELAY_S)


class BackgroundLoad:
    """The load generator on its own thread and event loop, so the test can act meanwhile."""

    def __init__(self, url: str, requests) -> None:
        self.result = None
        self._thread = threading.Thread(target=lambda: setattr(
            self, "result", asyncio.run(run_load(url, requests, progress_every_s=5))), daemon=True)

    def __enter__(self) -> "BackgroundLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(180)

    @property
    def summary(self):
        assert self.result is not None, "load generator did not finish"
        return self.result[0]


def test_dgd_runs_as_live_dynamo_processes_and_scales(kubectl, namespace, prometheus, live_dynamo, adapter):
    name = "llm"
    dns = f"{namespace}-{name}"
    kubectl.apply([dgd(name)], namespace)
    wait_for(lambda: dgd_ready(kubectl, namespace, name), timeout=60, what="DGD Ready")
    frontend = wait_for(lambda: live_dynamo.address_of("Frontend"), what="frontend target")
    url = f"http://{frontend}"

    # completions go through the frontend to prefill and decode
    wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model listed")
    r = httpx.post(f"{url}/v1/completions", timeout=30,
                   json={"model": MODEL_NAME, "prompt": prompt_of(300), "max_tokens": 12})
    assert r.status_code == 200, r.text
    assert r.json()["usage"] == {**r.json()["usage"], "prompt_tokens": 300, "completion_tokens": 12}

    # Prometheus scrapes all three pods, labelled as Dynamo's stock PodMonitors label them
    # (namespace, pod, container, endpoint, job), with Dynamo's own labels on Dynamo's series
    prometheus.wait_for_targets("dynamo", 3, timeout_s=30)
    sel = f'namespace="{namespace}"'
    requests_total = wait_for(lambda: prometheus.query(f'dynamo_frontend_requests_total{{{sel}}} > 0'),
                              what="dynamo_frontend_requests_total")
    fe = requests_total[0]["metric"]
    assert fe["job"] == "dynamo-system/dynamo-frontend" and fe["pod"].startswith(f"{name}-") and "dgd" not in fe
    # the mocker's decode workers export vLLM-style KV metrics; its prefill workers only
    # Dynamo's per-component request metrics (the frontend reports their prefill load)
    kv = wait_for(lambda: prometheus.query(f'vllm:kv_cache_usage_perc{{{sel}}}'), what="decode KV metrics")
    assert all(s["metric"]["pod"].startswith(f"{name}-decode-") for s in kv)
    assert {s["metric"]["job"] for s in kv} == {"dynamo-system/dynamo-worker"}
    dyn = f"{namespace}-{name}".replace("-", "_")  # DYN_NAMESPACE <ns>-<dgd>, exported with `_`
    prefill = wait_for(lambda: prometheus.query(
        f'dynamo_component_requests_total{{{sel},dynamo_namespace="{dyn}",dynamo_component="prefill"}} > 0'),
        what="prefill worker request metrics")
    assert prefill[0]["metric"]["pod"].startswith(f"{name}-prefill-")

    # every Dynamo name the signals and the dashboard read as live is exported by these processes
    exported = set()
    for target in prometheus.active_targets("dynamo"):
        exported |= exported_names(httpx.get(target["scrapeUrl"], timeout=5).text)
    missing = {m.name for m in DYNAMO_METRICS if m.live} - exported
    assert not missing, f"documented as exported by the live frontend/mocker but absent: {sorted(missing)}"

    # kubectl scale dgdsa starts real workers that register (how fast, and their memory, is
    # measured by benchmarks/live_dynamo.py)
    wait_for(lambda: kubectl.run("get", "dgdsa", f"{name}-decode", "-n", namespace, check=False).returncode == 0,
             what="decode adapter")
    kubectl("scale", "dgdsa", f"{name}-decode", "--replicas=3", "-n", namespace)
    wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "decode") == 3,
             timeout=60, what="3 registered decode workers")
    kubectl("scale", "dgdsa", f"{name}-decode", "--replicas=4", "-n", namespace)
    kubectl("scale", "dgdsa", f"{name}-prefill", "--replicas=4", "-n", namespace)
    wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "decode") == 4
             and registered_instances(live_dynamo.discovery_dir, dns, "prefill") == 4,
             timeout=60, what="4 prefill + 4 decode workers")
    assert len(pids_using(live_dynamo.discovery_dir)) == 9  # one process per pod

    # back to 1 decode and 1 prefill under load: the removed workers drain, no request fails
    with BackgroundLoad(url, synthetic(rate_per_s=6, duration_s=20, input_length=800, output_length=150)) as load:
        # scale down only once requests are in flight on the workers about to go
        wait_for(lambda: prometheus.query(f'sum(vllm:num_requests_running{{{sel},pod=~"{name}-decode-.*"}}) >= 2'),
                 timeout=60, what="requests running on the decode workers")
        kubectl("scale", "dgdsa", f"{name}-decode", "--replicas=1", "-n", namespace)
        kubectl("scale", "dgdsa", f"{name}-prefill", "--replicas=1", "-n", namespace)
        wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "decode") == 1
                 and len(pids_using(live_dynamo.discovery_dir)) == 3,
                 timeout=40, what="removed workers drained and gone")
    print("load:", load.summary.line())
    assert load.summary.requests == 120
    assert load.summary.failed_unexplained == 0, load.summary.line()
    assert "draining" in live_dynamo.log_text()
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "nvidia.com/dynamo-component=decode")["items"]
    assert len(pods) == 1

    # nothing outlives the stand-in
    live_dynamo.stop()
    wait_for(lambda: not pids_using(live_dynamo.discovery_dir), timeout=15, what="no Dynamo process left")


def test_load_generator_replays_both_trace_formats_then_processes_die_with_a_killed_standin(
        kubectl, namespace, live_dynamo, traces_dir, tmp_path):
    kubectl.apply([dgd("small")], namespace)
    wait_for(lambda: dgd_ready(kubectl, namespace, "small"), timeout=60, what="DGD Ready")
    assert len(pids_using(live_dynamo.discovery_dir)) == 3
    url = f"http://{live_dynamo.address_of('Frontend')}"
    wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model listed")
    for trace, seconds in (("mooncake_synthetic.jsonl", 6), ("azure_llm_2023_code.csv", 20)):
        out = tmp_path / f"{trace}.json"
        r = subprocess.run([sys.executable, "-m", "devcluster.loadgen", "--url", url, "--trace", str(traces_dir / trace),
                            "--duration", str(seconds), "--speed", "4", "--max-isl", "8192", "--json", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        result = json.loads(out.read_text())
        assert result["summary"]["requests"] >= 5 and result["summary"]["failed"] == 0, result["summary"]
        assert all(q["ttft_s"] > 0 for q in result["requests"])
        assert "load progress" in r.stderr or result["summary"]["duration_s"] < 5
    live_dynamo.stop(sig=signal.SIGKILL)
    wait_for(lambda: not pids_using(live_dynamo.discovery_dir), timeout=15, what="no Dynamo process left")


def test_a_crashed_worker_turns_its_pod_not_ready_and_comes_back(kubectl, namespace, live_dynamo):
    """As a kubelet would: the pod of a dead worker process is reported NotReady (so the DGD is
    not Ready and the planner waits), then the process starts again and registers."""
    kubectl.apply([dgd("crash")], namespace)
    wait_for(lambda: dgd_ready(kubectl, namespace, "crash"), timeout=60, what="DGD Ready")
    decode = [pid for pid in pids_using(live_dynamo.discovery_dir)
              if b"decode" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(decode) == 1
    os.kill(decode[0], signal.SIGKILL)
    wait_for(lambda: not dgd_ready(kubectl, namespace, "crash"), timeout=15, interval=0.1, what="DGD not Ready")
    pod = kubectl.json("get", "pods", "-n", namespace, "-l", "nvidia.com/dynamo-component=decode")["items"][0]
    wait_for(lambda: dgd_ready(kubectl, namespace, "crash"), timeout=30, what="DGD Ready again")
    assert registered_instances(live_dynamo.discovery_dir, f"{namespace}-crash", "decode") == 1
    again = kubectl.json("get", "pods", "-n", namespace, "-l", "nvidia.com/dynamo-component=decode")["items"][0]
    assert again["metadata"]["name"] == pod["metadata"]["name"]  # the same pod, a new process
    assert "process exited" in live_dynamo.log_text()


def test_a_worker_that_outlives_its_discovery_lease_is_restarted(kubectl, namespace, live_dynamo):
    """A worker frozen past its discovery lease (a stalled host, a long GC pause) comes back to
    entries the frontend has already expired: it keeps running but nobody routes to it, and
    the model answers 404. As Dynamo on etcd exits when its lease is lost and the kubelet starts
    it again, the stand-in restarts such a worker, and the model is served again."""
    kubectl.apply([dgd("stall")], namespace)
    wait_for(lambda: dgd_ready(kubectl, namespace, "stall"), timeout=60, what="DGD Ready")
    url = "http://" + wait_for(lambda: live_dynamo.address_of("Frontend"), what="frontend target")
    wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model listed")
    dns = f"{namespace}-stall"
    decode = [pid for pid in pids_using(live_dynamo.discovery_dir)
              if b"decode" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(decode) == 1
    os.killpg(decode[0], signal.SIGSTOP)
    try:
        # the frontend's store expires entries untouched for 10 s
        wait_for(lambda: registered_instances(live_dynamo.discovery_dir, dns, "decode") == 0,
                 timeout=30, interval=0.2, what="the frozen worker's entries expired")
    finally:
        os.killpg(decode[0], signal.SIGCONT)

    def served() -> bool:
        r = httpx.post(f"{url}/v1/completions", timeout=30,
                       json={"model": MODEL_NAME, "prompt": prompt_of(100), "max_tokens": 4})
        return r.status_code == 200

    wait_for(served, timeout=60, interval=0.5, what="the model served again")
    assert registered_instances(live_dynamo.discovery_dir, dns, "decode") == 1
    assert decode[0] not in pids_using(live_dynamo.discovery_dir)  # a new process, not the frozen one
    assert "discovery entries expired" in live_dynamo.log_text()
