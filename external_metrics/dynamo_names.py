"""Dynamo's own metric names that the signal mapping and the Grafana dashboard read.

Dynamo renames metrics between releases, so the names are listed in one place, each with who
exports it. `live` says whether the frontend and mocker workers of the pinned `ai-dynamo`
release export it on a local deployment (`tests/dynamo/` scrapes them to prove it); the other
names come from real vLLM/SGLang workers, which cannot run without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DynamoMetric:
    name: str
    type: str
    exporter: str
    meaning: str
    live: bool


_F, _M, _W = "frontend", "decode mocker worker", "vLLM/SGLang worker"

DYNAMO_METRICS: tuple[DynamoMetric, ...] = (
    DynamoMetric("dynamo_frontend_requests_total", "counter", _F, "requests by status and model", True),
    DynamoMetric("dynamo_frontend_queued_requests", "gauge", _F, "requests waiting for a worker", True),
    DynamoMetric("dynamo_frontend_inflight_requests", "gauge", _F, "requests in flight", True),
    DynamoMetric("dynamo_frontend_active_requests", "gauge", _F, "requests being streamed", True),
    DynamoMetric("dynamo_frontend_time_to_first_token_seconds", "histogram", _F, "time to first token", True),
    DynamoMetric("dynamo_frontend_inter_token_latency_seconds", "histogram", _F, "inter-token latency", True),
    DynamoMetric("dynamo_frontend_request_duration_seconds", "histogram", _F, "whole request duration", True),
    DynamoMetric("dynamo_frontend_input_sequence_tokens", "histogram", _F, "prompt length", True),
    DynamoMetric("dynamo_frontend_output_sequence_tokens", "histogram", _F, "generated length", True),
    DynamoMetric("dynamo_frontend_worker_active_decode_blocks", "gauge", _F,
                 "KV blocks in use per worker, as the KV router sees them", True),
    DynamoMetric("dynamo_frontend_worker_active_prefill_tokens", "gauge", _F,
                 "prompt tokens in prefill per worker, as the KV router sees them", True),
    DynamoMetric("dynamo_frontend_router_queue_pending_requests", "gauge", _F,
                 "requests held in the KV router's queue", True),
    DynamoMetric("dynamo_component_router_requests_total", "counter", _F,
                 "requests the KV router routed; labelled with the DGD's Dynamo namespace, so the default "
                 "mapping tells a frontend pod's DGD from it", True),
    DynamoMetric("dynamo_component_inflight_requests", "gauge", "worker (any engine, and the mocker)",
                 "requests an endpoint of the worker holds; labelled `dynamo_namespace`, `dynamo_component`, "
                 "so the default mapping tells a worker pod's DGD and service from its `generate` endpoint", True),
    DynamoMetric("vllm:kv_cache_usage_perc", "gauge", _M, "KV-cache usage in [0, 1]", True),
    DynamoMetric("vllm:num_requests_running", "gauge", _M, "requests running on the worker", True),
    DynamoMetric("vllm:num_requests_waiting", "gauge", _M, "requests waiting on the worker", True),
    DynamoMetric("vllm:gpu_cache_usage_perc", "gauge", _W, "KV-cache usage (older vLLM name)", False),
    DynamoMetric("dynamo_component_kvstats_active_blocks", "gauge", _W, "KV blocks in use", False),
    DynamoMetric("dynamo_component_kvstats_total_blocks", "gauge", _W, "KV blocks available", False),
    DynamoMetric("dynamo_component_kvstats_gpu_cache_usage_percent", "gauge", _W, "KV-cache usage", False),
    DynamoMetric("dynamo_component_gpu_cache_usage_percent", "gauge", _W, "KV-cache usage (newer name)", False),
    DynamoMetric("dynamo_component_num_requests_running", "gauge", _W, "requests running", False),
    DynamoMetric("dynamo_component_num_requests_waiting", "gauge", _W, "requests waiting", False),
    DynamoMetric("sglang:num_queue_reqs", "gauge", "SGLang worker", "requests queued", False),
)
