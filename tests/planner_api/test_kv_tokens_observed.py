"""The decode pool's KV tokens held, observed live (`PoolObservation.active_tokens`, what the
online fit divides by KV usage for the KV capacity): the frontend's KV router blocks of the
decode workers times the model's block size, found under either label preset, as Dynamo 1.6.1
exports them; optional, so a frontend without them leaves the field unknown (0) and holds
nothing. A real Prometheus scrapes exporters serving those series."""

from __future__ import annotations

import pytest
from exporter_process import Exporter
from helpers import wait_for
from kubernetes import client

from adapter.models import parse_dgd
from external_metrics.prom import PrometheusClient
from scaler.service.config import ServiceConfig
from scaler.service.observe import LiveObserver, held_tokens

pytestmark = pytest.mark.prometheus

BLOCK = 64
DECODE_BLOCKS = (400, 250)  # two decode workers, as the router counts their blocks


def frontend(dyn_ns: str, with_kv: bool = True) -> list[dict]:
    out = [{"name": "dynamo_frontend_requests", "type": "counter", "value": 3, "labels": {"model": "m"}},
           {"name": "dynamo_frontend_inflight_requests", "value": 0, "labels": {"model": "m"}},
           # the frontend pod's identity under the dynamo preset
           {"name": "dynamo_component_router_requests", "type": "counter", "value": 3,
            "labels": {"dynamo_namespace": dyn_ns}}]
    if with_kv:
        out += [{"name": "dynamo_frontend_model_kv_cache_block_size", "value": BLOCK, "labels": {"model": "m"}}]
        out += [{"name": "dynamo_frontend_worker_active_decode_blocks", "value": n,
                 "labels": {"worker_id": str(i), "dp_rank": "0", "worker_type": "decode"}}
                for i, n in enumerate(DECODE_BLOCKS)]
        # a prefill worker's blocks are not the decode pool's
        out += [{"name": "dynamo_frontend_worker_active_decode_blocks", "value": 999,
                 "labels": {"worker_id": "9", "dp_rank": "0", "worker_type": "prefill"}}]
    return out


def workers(dyn_ns: str) -> list[dict]:
    return [{"name": name, "value": v, "labels": {"model_name": "m", **extra}}
            for name, v, extra in (("vllm:num_requests_running", 5, {}), ("vllm:num_requests_waiting", 0, {}),
                                   ("vllm:kv_cache_usage_perc", 0.3, {}))] + [
        {"name": "dynamo_component_inflight_requests", "value": 5,
         "labels": {"dynamo_namespace": dyn_ns, "dynamo_component": "backend", "dynamo_endpoint": "generate"}}]


DGD = parse_dgd({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llm"},
                 "spec": {"services": {"prefill": {"replicas": 1}, "decode": {"replicas": 2}}},
                 "status": {"services": {"prefill": {"readyReplicas": 1}, "decode": {"readyReplicas": 2}}}})


def observer(prometheus, namespace: str, signals: dict | None) -> LiveObserver:
    cfg = ServiceConfig.model_validate({
        "deployment": {"name": "llm", "namespace": namespace, "prefill_service": "prefill",
                       "decode_service": "decode"},
        "planner": {"interval_s": 5}, **({"signals": signals} if signals else {})})
    # the pools are read from Prometheus only: no Kubernetes call is made
    return LiveObserver(cfg, client.ApiClient(), PrometheusClient(prometheus.url))


def pools(obs: LiveObserver):
    obs.prom_error = None
    decode, decode_missing = obs._pool("decode", DGD, 2, 100.0)
    prefill, _ = obs._pool("prefill", DGD, 1, 100.0)
    return decode, decode_missing, prefill


@pytest.mark.parametrize("preset", ["dynamo", "dgd-labels"])
def test_the_decode_pool_s_kv_tokens_come_from_the_router_s_blocks(prometheus, tmp_path, preset):
    ns = f"kv-{preset}"
    dyn_ns = f"{ns}-llm"
    fe, wk = Exporter(tmp_path / "fe", frontend(dyn_ns)), Exporter(tmp_path / "wk", workers(dyn_ns))
    try:
        if preset == "dynamo":  # pods as Dynamo's PodMonitors label them: no dgd or service label
            prometheus.set_targets("fe", [(fe.address, {"namespace": ns, "pod": "llm-frontend-0",
                                                        "component_type": "frontend", "endpoint": "x"})])
            prometheus.set_targets("wk", [(wk.address, {"namespace": ns, "pod": "llm-decode-0",
                                                        "component_type": "decode", "endpoint": "x"})])
            obs = observer(prometheus, ns, None)
        else:
            prometheus.set_targets("fe", [(fe.address, {"namespace": ns, "dgd": "llm", "service": "Frontend"})])
            prometheus.set_targets("wk", [(wk.address, {"namespace": ns, "dgd": "llm", "service": "decode"})])
            obs = observer(prometheus, ns, {"preset": "dgd-labels"})
        # every series scraped at least once: the KV, the router's blocks and the queue/in-flight ones
        decode, missing, prefill = wait_for(lambda: (got := pools(obs))[0].kv_usage is not None
                                            and got[0].active_tokens > 0 and got[1] is None and got,
                                            timeout=30, interval=0.5, what="the decode pool observed in full")
        assert decode.active_tokens == sum(DECODE_BLOCKS) * BLOCK, decode
        assert decode.kv_usage == pytest.approx(0.3) and missing is None
        assert prefill.active_tokens == 0, prefill  # read for the decode pool only

        # a frontend without the router's KV series (no --router-mode kv): unknown, and no hold
        fe.set(frontend(dyn_ns, with_kv=False))
        decode, missing, _ = wait_for(lambda: (got := pools(obs))[0].active_tokens == 0 and got, timeout=30,
                                      interval=0.5, what="the KV tokens gone")
        assert missing is None and decode.kv_usage == pytest.approx(0.3) and obs.prom_error is None, decode
    finally:
        fe.stop()
        wk.stop()


def test_tokens_held_add_half_the_output_to_the_router_s_prompt_blocks():
    # the router's count is prompt blocks; in flight, a request has generated half its output on average
    assert held_tokens(3000, 1000.0, 500.0) == 3750
    assert held_tokens(3000, 1000.0, 0.0) == 3000
    # unknown lengths or nothing held: the router's count as it is
    for isl, osl in ((None, 500.0), (1000.0, None), (float("nan"), 500.0), (-1.0, 500.0), (1000.0, float("inf"))):
        assert held_tokens(3000, isl, osl) == 3000
    assert held_tokens(0, 1000.0, 500.0) == 0
