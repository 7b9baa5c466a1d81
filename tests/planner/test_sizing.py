"""Need from load, pure: the throughput path (prefill_replicas, decode_replicas) and the load path
(prefill_now, decode_now, measured_decode_need), on a hand-made profile whose numbers are easy to
follow: prefill 10,000 tokens/s per GPU and 0.1 ms per prompt token; decode 20 ms ITL at half KV."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.planner.sizing import (Load, ceil_replicas, fleet_with_headroom, decode_now, decode_replicas, measured_decode_need, prefill_now,
                                   prefill_replicas, prefill_utilization)
from scaler.policy import PoolObservation
from scaler.profile import DecodeProfile, PerformanceProfile, PrefillProfile


def profile(max_kv_tokens: float = 100_000.0, gpus_prefill: int = 1) -> PerformanceProfile:
    return PerformanceProfile(
        PrefillProfile(np.array([100.0, 10_000.0]), np.array([10.0, 1000.0]), np.array([10_000.0, 10_000.0])),
        DecodeProfile(np.array([0.0, 1.0]), np.array([1000.0, 1000.0]), np.array([10.0, 30.0]),
                      np.array([100.0, 1000.0]), max_kv_tokens),
        gpus_per_prefill_worker=gpus_prefill)


@pytest.mark.parametrize("ttft_ms, u", [
    (300.0, 0.8),      # wait budget of 2 service times: 4/5
    (200.0, 2 / 3),    # 1 service time
    (150.0, 0.5),      # half a service time
    (120.0, 0.5),      # less: never below 0.5
    (50.0, 0.5),       # the prompt alone misses the target
    (10_000.0, 0.8),   # never above 0.8
])
def test_prefill_utilization(ttft_ms, u):
    assert prefill_utilization(profile(), 1000.0, ttft_ms) == pytest.approx(u)  # 100 ms prompts


@pytest.mark.parametrize("load, kw, gpus, workers", [
    (Load(10.0, 1000.0, 100.0), {}, 1, 1.5),                   # 10,000 tok/s at u = 2/3
    (Load(10.0, 1000.0, 100.0), {"correction": 2.0}, 1, 3.0),
    (Load(10.0, 1000.0, 100.0), {"utilization": 0.5}, 1, 2.0),
    (Load(10.0, 1000.0, 100.0), {}, 2, 0.75),                  # two GPUs per worker
    (Load(0.0, 1000.0, 100.0), {}, 1, 0.0),
])
def test_prefill_replicas(load, kw, gpus, workers):
    assert prefill_replicas(load, profile(gpus_prefill=gpus), 200.0, **kw) == pytest.approx(workers)


@pytest.mark.parametrize("load, max_kv, kw, workers", [
    # throughput bound: 100 tok/s over the best 1000 tok/s point within 0.8 x 50 ms
    (Load(1.0, 1000.0, 100.0), 100_000.0, {}, 0.1),
    (Load(1.0, 1000.0, 100.0), 100_000.0, {"correction": 2.0}, 0.2),
    # KV bound: 2 requests in flight (100 tokens x 20 ms) holding 1100 tokens each, 850 usable
    (Load(1.0, 1000.0, 100.0), 1000.0, {"kv_headroom": 0.85}, 2 * 1100 / 850),
    (Load(1.0, 1000.0, 0.0), 100_000.0, {}, 0.0),
])
def test_decode_replicas(load, max_kv, kw, workers):
    assert decode_replicas(load, profile(max_kv), 50.0, **kw) == pytest.approx(workers)


@pytest.mark.parametrize("x, n", [(2.0, 2), (2.0000001, 2), (2.01, 3), (0.0, 0), (-1.0, 0)])
def test_ceil_replicas_ignores_float_noise(x, n):
    assert ceil_replicas(x) == n


@pytest.mark.parametrize("pool, need", [
    (PoolObservation(active=4), 0.0),                                    # no KV reported
    (PoolObservation(active=0, kv_usage=0.5), 0.0),
    (PoolObservation(active=4, kv_usage=0.5, running_requests=8), 2.5),  # 4 x 0.5 / 0.8
    (PoolObservation(active=4, kv_usage=0.5, running_requests=8, queued_requests=2), 3.125),  # + a quarter waiting
])
def test_measured_decode_need(pool, need):
    assert measured_decode_need(pool, 0.8) == pytest.approx(need)


@pytest.mark.parametrize("pool, need", [
    # every sequence slot taken, a third as many waiting, the KV cache half empty: full by slots
    (PoolObservation(active=1, kv_usage=0.5, running_requests=256, queued_requests=85), 256 / 256 * (1 + 85 / 256) / 0.8),
    # slots half taken, KV fuller: the KV usage decides, as without a cap
    (PoolObservation(active=2, kv_usage=0.6, running_requests=256), 2 * 0.6 / 0.8),
    # no KV usage reported: the slots still count
    (PoolObservation(active=2, running_requests=384), 2 * 0.75 / 0.8),
    (PoolObservation(active=0, running_requests=10), 0.0),
])
def test_measured_decode_need_counts_sequence_slots(pool, need):
    assert measured_decode_need(pool, 0.8, max_seqs=256) == pytest.approx(need)
    # without the cap a pool at its slot limit with KV to spare would look half used
    assert measured_decode_need(pool, 0.8) <= need


@pytest.mark.parametrize("rate, pool, startup_s, workers, backlog", [
    # keeps up: only the queue, drained over 10 s
    (10.0, PoolObservation(active=1, queued_tokens=5000), 60.0, 1.0 + 0.05, 0.05),
    # 20,000 tok/s more than one worker serves, for a 60 s start-up
    (30.0, PoolObservation(active=1, queued_tokens=5000), 60.0, 3.0 + 12.05, 12.05),
    (30.0, PoolObservation(active=1, queued_tokens=5000), 0.0, 3.0 + 0.05, 0.05),
    # no worker running counts as one (the growth is not infinite)
    (30.0, PoolObservation(active=0), 60.0, 3.0 + 12.0, 12.0),
    (30.0, PoolObservation(active=3), 60.0, 3.0, 0.0),
])
def test_prefill_now(rate, pool, startup_s, workers, backlog):
    p = profile()
    per_prefill = p.prefill.throughput_per_gpu_at(1000.0) * p.gpus_per_prefill_worker
    got = prefill_now(rate, 1000.0, pool, per_prefill, startup_s, backlog_horizon_s=10.0)
    assert got.workers == pytest.approx(workers) and got.backlog == pytest.approx(backlog)


@pytest.mark.parametrize("pool, workers", [
    (PoolObservation(active_tokens=40_000, queued_tokens=10_000), 1.0),  # by the profile's KV
    # the workers report more usage than the profile's KV accounts for: that wins
    (PoolObservation(active=2, active_tokens=40_000, queued_tokens=10_000, kv_usage=0.9, running_requests=4), 3.6),
])
def test_decode_now(pool, workers):
    assert decode_now(pool, profile().decode.max_kv_tokens, kv_headroom=0.5) == pytest.approx(workers)


def test_a_fleet_headroom_adds_the_whole_workers_nearest_its_share():
    # the tail model sizes whole workers: a factor of 1.02 on 9 asks for a fifth of a worker, not a tenth
    assert ceil_replicas(fleet_with_headroom(9.0, 1.02)) == 9
    assert ceil_replicas(fleet_with_headroom(9.0, 1.06)) == 10
    assert ceil_replicas(fleet_with_headroom(9.0, 1.2)) == 11
    assert ceil_replicas(fleet_with_headroom(2.0, 1.3)) == 3
    assert fleet_with_headroom(7.4, 1.0) == 7.4  # a fractional need is left as it is
    assert fleet_with_headroom(0.0, 2.0) == 0.0
