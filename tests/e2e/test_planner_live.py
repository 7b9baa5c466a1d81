"""The planner alone on a DGD served by real Dynamo processes: it scales prefill and decode up on
a load step and down after it, the DGD follows, no request fails; an override pins a pool and
survives a planner restart; advisory mode computes without writing; callers without the token
are refused."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from helpers import wait_dgd_ready, wait_for

from devcluster import scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.stack import LiveStack
from dynamo_scaling.traces import Request

pytestmark = pytest.mark.cluster


def step_load() -> list[Request]:
    """2/s for 10 s, 10/s for 30 s, then 1/s for 20 s."""
    out, t0 = [], 0.0
    for rate, seconds in ((2, 10), (10, 30), (1, 20)):
        out += [Request(t0 + r.timestamp_ms, r.input_length, r.output_length)
                for r in synthetic(rate, seconds, input_length=4000, output_length=100)]
        t0 += seconds * 1000
    return out


def test_planner_scales_both_pools_on_a_load_step_and_answers_operators(cluster, kubectl, namespace, tmp_path):
    with LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, namespace, scenario.STARTUP_DELAY_S) as stack:
        stack.start_prometheus()
        stack.start_standin()
        stack.start_adapter()
        kubectl.apply([scenario.LLM], namespace)
        wait_dgd_ready(kubectl, namespace, "llm", stack, timeout=90)
        stack.start_planner(scenario.planner_config(namespace))
        api = f"http://127.0.0.1:{stack.planner_port}"
        auth = {"Authorization": f"Bearer {stack.planner_token}"}
        url = wait_for(lambda: stack.frontend_url("llm"), what="frontend")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model served")

        def dgd(svc: str) -> int:
            return scenario.replicas(kubectl, namespace, "llm", svc)

        peak = {"prefill": 1, "decode": 1}
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                try:
                    for svc in peak:
                        peak[svc] = max(peak[svc], dgd(svc))
                except Exception:  # the API server goes away at the end of a failed test
                    return
                done.wait(1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        summary, _ = asyncio.run(run_load(url, step_load(), progress_every_s=10))
        print("load:", summary.line(), "peak:", peak)
        assert summary.failed_unexplained == 0, summary.line()
        decisions = httpx.get(f"{api}/v1/decisions", headers=auth).json()["items"]
        assert peak["prefill"] >= 2 and peak["decode"] >= 2, (peak, [d["reason"] for d in decisions[:40]])
        wait_for(lambda: dgd("prefill") == 1 and dgd("decode") == 1, timeout=90, interval=1,
                 what="both pools back to 1 after the step")
        done.set()
        watcher.join(5)
        wait_for(lambda: scenario.ready_pods(kubectl, namespace, "llm", "decode") == 1, timeout=30,
                 what="decode pods follow")

        # operators: no token, a wrong token
        assert httpx.get(f"{api}/v1/status").status_code == 401
        assert httpx.get(f"{api}/v1/status", headers={"Authorization": "Bearer nope"}).status_code == 401
        # an override pins decode; the DGD follows; it survives a planner restart
        r = httpx.put(f"{api}/v1/overrides/decode", json={"replicas": 2, "reason": "e2e"}, headers=auth)
        assert r.status_code == 200, r.text
        wait_for(lambda: dgd("decode") == 2, timeout=30, interval=0.5, what="decode pinned at 2")
        stack.restart("planner")
        status = httpx.get(f"{api}/v1/status", headers=auth).json()
        assert status["overrides"]["decode"]["replicas"] == 2, status
        wait_for(lambda: (httpx.get(f"{api}/v1/status", headers=auth).json().get("last_decision") or {})
                 .get("targets", {}).get("decode") == 2, timeout=20, what="pin honoured after restart")
        assert dgd("decode") == 2
        # advisory: decisions without writes; the pin goes, decode would drop to 1 but is not written
        assert httpx.post(f"{api}/v1/advisory", json={"enabled": True}, headers=auth).status_code == 200
        assert httpx.delete(f"{api}/v1/overrides/decode", headers=auth).status_code == 204
        wait_for(lambda: "advisory" in ((httpx.get(f"{api}/v1/status", headers=auth).json().get("last_decision") or {})
                                        .get("reason", "")), timeout=20, what="an advisory decision")
        assert dgd("decode") == 2
        assert httpx.post(f"{api}/v1/advisory", json={"enabled": False}, headers=auth).status_code == 200
        wait_for(lambda: dgd("decode") == 1, timeout=60, interval=1, what="planner writes again")
