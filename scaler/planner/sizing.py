"""Turn a load forecast into replicas with a performance profile. Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaler.policy import PoolObservation
from scaler.profile import PerformanceProfile


@dataclass(frozen=True)
class Load:
    rate: float  # requests per second
    isl: float   # mean prompt tokens
    osl: float   # mean output tokens


def prefill_utilization(profile: PerformanceProfile, isl: float, ttft_target_ms: float) -> float:
    """Highest prefill utilization that still leaves room for queueing within the TTFT target.

    With service time s (unloaded TTFT) and target T, an M/D/1-like queue waits about
    s * u / (2 (1 - u)); solving s + wait <= T for u keeps the mean inside the target with
    slack for bursts."""
    s = max(1e-3, profile.prefill.ttft_ms_at(isl))
    slack = max(0.0, ttft_target_ms - s)
    if slack <= 0:
        return 0.5
    r = slack / s  # wait budget in service times
    u = 2 * r / (1 + 2 * r)
    return float(min(0.8, max(0.5, u)))


def prefill_replicas(load: Load, profile: PerformanceProfile, ttft_target_ms: float,
                     correction: float = 1.0, utilization: float | None = None) -> float:
    """Fractional prefill workers needed (callers round)."""
    if load.rate <= 0 or load.isl <= 0:
        return 0.0
    u = utilization if utilization is not None else prefill_utilization(profile, load.isl, ttft_target_ms)
    tokens_s = load.rate * load.isl * correction
    per_worker = profile.prefill.throughput_per_gpu_at(load.isl) * profile.gpus_per_prefill_worker
    return tokens_s / (per_worker * u)


def decode_replicas(load: Load, profile: PerformanceProfile, itl_target_ms: float,
                    correction: float = 1.0, kv_headroom: float = 0.85) -> float:
    """Fractional decode workers: enough token throughput at the ITL target and enough KV cache
    for the requests in flight (Little's law: in flight = rate x decode time)."""
    if load.rate <= 0 or load.osl <= 0:
        return 0.0
    context = load.isl + load.osl / 2
    thpt, _ = profile.decode.best_throughput_per_gpu(itl_target_ms * 0.8, context)
    by_throughput = load.rate * load.osl * correction / (thpt * profile.gpus_per_decode_worker)
    itl_s = profile.decode.itl_ms_at(0.5, context) / 1000.0 * correction
    in_flight = load.rate * load.osl * itl_s
    by_kv = in_flight * (load.isl + load.osl) / (profile.decode.max_kv_tokens * kv_headroom)
    return max(by_throughput, by_kv)


def measured_decode_need(pool: PoolObservation, kv_headroom: float, max_seqs: int | None = None) -> float:
    """Decode workers needed by how full the workers report they are, which holds whatever their
    real capacity is (the profile may assume another). A worker is full when its KV cache is, or
    when it runs as many sequences as its engine batches (`max_seqs`, the engine's max_num_seqs)
    with KV to spare: past that, requests wait for a slot, and their first token with them.
    Requests waiting add in proportion to the requests each worker holds."""
    if pool.active <= 0:
        return 0.0
    fill = pool.kv_usage or 0.0
    if max_seqs:
        fill = max(fill, pool.running_requests / (pool.active * max_seqs))
    if fill <= 0:
        return 0.0
    backlog = pool.queued_requests / pool.running_requests if pool.running_requests > 0 else 0.0
    return pool.active * fill * (1.0 + backlog) / kv_headroom


@dataclass(frozen=True)
class PrefillNow:
    workers: float  # for the load arriving now plus the backlog
    backlog: float  # of which: workers that drain the backlog expected once new workers start


def prefill_now(rate: float, isl: float, pool: PoolObservation, per_prefill: float,
                startup_s: float, backlog_horizon_s: float, growth_rate: float | None = None) -> PrefillNow:
    """Load path for prefill: what the queue says is missing now, at `per_prefill` prompt tokens/s
    per worker (the profile's, or the online fit's). New workers help only once started, so size
    for the backlog expected then (the queue plus what the running workers cannot keep up with
    during a start-up, arrivals going on at `growth_rate`, by default `rate`), drained over the
    backlog horizon."""
    running = max(1, pool.active)
    arriving = rate if growth_rate is None else growth_rate
    growth = max(0.0, arriving * isl - running * per_prefill) * startup_s
    backlog = (pool.queued_tokens + growth) / (per_prefill * backlog_horizon_s)
    return PrefillNow(rate * isl / per_prefill + backlog, backlog)


def decode_now(pool: PoolObservation, kv_tokens_per_worker: float | None, kv_headroom: float,
               max_seqs: int | None = None) -> float:
    """Load path for decode: the KV held and waiting over the KV tokens a worker holds (the
    profile's, or the online fit's; None: not known yet), or how full the workers report they are
    (KV usage or sequence slots), whichever needs more."""
    measured = measured_decode_need(pool, kv_headroom, max_seqs)
    if kv_tokens_per_worker is None:
        return measured
    kv_demand = pool.active_tokens + pool.queued_tokens
    return max(kv_demand / (kv_tokens_per_worker * kv_headroom), measured)


def fleet_with_headroom(workers: float, factor: float) -> float:
    """A fleet raised by a headroom factor, by the whole workers nearest the share it asks for:
    the tail model sizes whole workers, so multiplying and rounding up would add one for any
    factor above 1."""
    return workers + math.floor(workers * (factor - 1.0) + 0.5)


def ceil_replicas(x: float, eps: float = 1e-6) -> int:
    return int(math.ceil(max(0.0, x) - eps))
