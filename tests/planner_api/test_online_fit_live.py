"""A planner started with no profile file against real Dynamo processes (frontend and mocker
workers behind the stand-in operator, scraped by a real Prometheus) fits its profile online from
the traffic it observes: its status says profile_source "online-fit", the fit's window count grows
under load, and the KV capacity per decode worker it learns (the tokens the router counts on the
decode workers, with half the output added, over their reported KV usage) is the capacity the
mocker reports, within 15 %: the router's count and the worker's usage gauge are scraped at
different instants, so a window's two readings can differ by a request in flight. The load is
Poisson: evenly spaced arrivals let every scrape see the same phase of the load, so that miscount
would be the same in every window."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from helpers import wait_dgd_ready, wait_for

from devcluster import manifests, scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.stack import LiveStack
from external_metrics.prom import PrometheusClient

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.dynamo]

INTERVAL_S = 2
TOLERANCE = 0.15


def test_a_planner_without_a_profile_learns_the_mocker_s_kv_capacity(cluster, kubectl, namespace, tmp_path):
    # one worker per pool throughout: the load path may ask for more, the bounds keep the fleet still
    planner = {"deployment": {"name": "llm", "namespace": namespace, "prefill_service": "prefill",
                              "decode_service": "decode"},
               "planner": {"interval_s": INTERVAL_S, "ttft_ms": 500, "itl_ms": 50, "startup_s": 4,
                           "min_prefill": 1, "max_prefill": 1, "min_decode": 1, "max_decode": 1}}
    with LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, namespace, scenario.STARTUP_DELAY_S) as stack:
        stack.start_prometheus()
        stack.start_standin()
        stack.start_adapter()
        kubectl.apply([manifests.dgd("llm", manifests.disaggregated(), scenario.STARTUP_DELAY_S,
                                     {"devcluster.dynamo-scaling.io/args-decode":
                                      f"--num-gpu-blocks-override {scenario.DECODE_BLOCKS}"})], namespace)
        wait_dgd_ready(kubectl, namespace, "llm", stack, timeout=90)
        url = wait_for(lambda: stack.frontend_url("llm"), what="frontend")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="model served")
        stack.start_planner(planner)
        api = f"http://127.0.0.1:{stack.planner_port}/v1/status"
        auth = {"Authorization": f"Bearer {stack.planner_token}"}

        def fit() -> dict:
            status = httpx.get(api, headers=auth, timeout=5).json()
            assert status["profile_source"] == "online-fit", status
            return status["profile_fit"]

        assert wait_for(lambda: httpx.get(api, headers=auth, timeout=5).status_code == 200, timeout=30,
                        what="planner serving")
        before = fit()["windows"]
        # steady load holding about five requests, a sixth of the decode worker's KV, without a queue
        load = threading.Thread(target=lambda: asyncio.run(
            run_load(url, synthetic(4, 90, input_length=3000, output_length=150, seed=1))), daemon=True)
        load.start()
        # the decode worker's capacity: the blocks it was started with times the block size the
        # frontend exports (the frontend's total-blocks series may be the prefill worker's, whose
        # default is ten times larger)
        prom = PrometheusClient(stack.prometheus.url)
        sel = f'{{namespace="{namespace}"}}'

        def block_size() -> float | None:
            got = prom.query(f"max(dynamo_frontend_model_kv_cache_block_size{sel})")
            return got[0].value if got else None

        capacity = scenario.DECODE_BLOCKS * wait_for(block_size, timeout=30, what="the KV block size in Prometheus")
        grown = wait_for(lambda: (f := fit())["windows"] >= before + 5 and f, timeout=90, interval=1,
                         what="the fit takes in windows")
        print("fit after", grown["windows"], "windows:", grown)
        learned = wait_for(lambda: (f := fit())["kv_capacity_tokens"] is not None and f, timeout=90, interval=1,
                           what="a KV capacity learned")["kv_capacity_tokens"]
        load.join(timeout=150)
        final = fit()
        print(f"capacity: mocker {capacity:.0f} tokens, fit {final['kv_capacity_tokens']:.0f} "
              f"(first {learned:.0f}); windows {before} -> {final['windows']}; trusted {final['trusted']}")
        assert final["windows"] > grown["windows"] > before
        assert abs(final["kv_capacity_tokens"] / capacity - 1) <= TOLERANCE, (final, capacity)
