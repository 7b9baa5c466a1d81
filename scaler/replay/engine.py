"""Run a trace through Dynamo's replay engine with one of our policies in the loop.

The bridge turns each engine snapshot into an `Observation`, asks the policy, and hands the
decision back in the engine's terms (absolute targets; the next tick as absolute sim time).
It also records a timeline for reports and the live view.

SLA counts (`TrafficWindow.slo`, for a policy with an `slo_probe_s` attribute): the engine hands
out per-request results only when the run ends, so between decisions the bridge ticks the engine
every `slo_probe_s` (0.1 s: mostly zero or one first token per tick) without changing the fleet and
counts each tick's requests as met or missed by that tick's mean TTFT and ITL. That is a
per-request count wherever a tick holds one request, which is the common case.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scaler.policy import Decision, Observation, Policy, PoolObservation, SLOCounts, TrafficWindow
from dynamo_scaling.traces import Request, prefix_reuse, write_mooncake

log = logging.getLogger(__name__)


ROUTER_MODES = ("round_robin", "kv_router")
DEFAULT_ROUTER_MODE = ROUTER_MODES[0]  # the engine's own default: earlier results stay reproducible


@dataclass(frozen=True)
class EngineConfig:
    startup_s: float = 60.0
    ttft_ms: float = 500.0
    itl_ms: float = 50.0
    initial_prefill: int = 1
    initial_decode: int = 1
    # the mocker's KV cache per worker (its defaults): blocks x tokens per block
    num_gpu_blocks: int = 16384
    kv_block_size: int = 64
    trace_block_size: int = 512
    # how requests are handed to workers: "round_robin" (the engine's default: a prompt may wait
    # behind its worker's queue while others are idle) or "kv_router" (Dynamo's KV router, by the
    # blocks each worker has to prefill and holds, as a frontend run with --router-mode kv)
    router_mode: str = DEFAULT_ROUTER_MODE

    def __post_init__(self) -> None:
        if self.router_mode not in ROUTER_MODES:
            raise ValueError(f"router_mode: {self.router_mode!r} is not one of {', '.join(ROUTER_MODES)}")

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_gpu_blocks * self.kv_block_size

    def engine_args(self, worker_type: str) -> dict:
        return {
            "engine": {"worker_type": worker_type, "num_gpu_blocks": self.num_gpu_blocks,
                       "block_size": self.kv_block_size},
            "startup_time": float(self.startup_s),
        }


def _pool(snap: dict, pool: str, capacity_tokens: int) -> PoolObservation:
    fpms = snap.get(f"{pool}_fpm_snapshots") or []
    if pool == "prefill":
        running = sum(f.get("num_prefill_requests", 0) for f in fpms)
        queued = sum(f.get("num_queued_prefill", 0) for f in fpms)
        active_tokens = sum(f.get("sum_prefill_tokens", 0) for f in fpms)
        queued_tokens = sum(f.get("sum_queued_prefill_tokens", 0) for f in fpms)
        kv = None
    else:
        running = sum(f.get("num_decode_requests", 0) for f in fpms)
        queued = sum(f.get("num_queued_decode", 0) for f in fpms)
        active_tokens = sum(f.get("sum_decode_kv_tokens", 0) for f in fpms)
        queued_tokens = sum(f.get("sum_queued_decode_kv_tokens", 0) for f in fpms)
        workers = max(1, len(fpms))
        kv = active_tokens / (capacity_tokens * workers) if capacity_tokens else None
    return PoolObservation(
        active=int(snap.get(f"active_{pool}_count", 0)),
        starting=int(snap.get(f"starting_{pool}_count", 0)),
        draining=int(snap.get(f"draining_{pool}_count", 0)),
        running_requests=int(running), queued_requests=int(queued),
        active_tokens=int(active_tokens), queued_tokens=int(queued_tokens), kv_usage=kv,
    )


def snapshot_to_observation(snap: dict, capacity_tokens: int, offset_s: float = 0.0) -> Observation:
    """`offset_s`: trace time of the engine's zero (the engine starts its clock at the first request)."""
    t = snap.get("traffic") or {}
    n = int(t.get("num_req") or 0)

    def avg(key: str, count_key: str | None = None) -> float | None:
        value = t.get(key)
        count = t.get(count_key) if count_key else n
        return float(value) if value is not None and (count or 0) > 0 else None

    traffic = TrafficWindow(
        duration_s=float(t.get("duration_s") or 0.0), num_requests=n,
        avg_isl=avg("avg_isl"), avg_osl=avg("avg_osl"),
        avg_ttft_ms=avg("avg_ttft_ms", "ttft_count"), avg_itl_ms=avg("avg_itl_ms", "itl_count"),
    )
    return Observation(now_s=float(snap["now_ms"]) / 1000.0 + offset_s, traffic=traffic,
                       prefill=_pool(snap, "prefill", capacity_tokens),
                       decode=_pool(snap, "decode", capacity_tokens))


@dataclass
class TimelinePoint:
    t_s: float
    request_rate: float
    avg_isl: float | None
    avg_ttft_ms: float | None
    avg_itl_ms: float | None
    prefill: tuple[int, int, int]  # active, starting, draining
    decode: tuple[int, int, int]
    target_prefill: int | None
    target_decode: int | None
    reason: str
    forecast_rate: float | None = None


class _SLOTally:
    """Traffic and SLA counts over the engine ticks between two policy decisions."""

    def __init__(self, ttft_ms: float, itl_ms: float, unloaded_ttft_ms: Callable[[float], float] | None,
                 arrivals: list[tuple[float, int, tuple[int, float | None]]] | None = None) -> None:
        self.ttft_ms, self.itl_ms, self.unloaded = ttft_ms, itl_ms, unloaded_ttft_ms
        # (engine time ms, prompt tokens, prefix reuse) of every request, read only up to the
        # current time: what the frontend sees of each prompt on arrival (live: its ISL histogram)
        self.arrivals, self.next_arrival = arrivals or [], 0
        self.reset()

    def reset(self) -> None:
        self.duration = 0.0
        self.n = self.shapes = self.isl = self.osl = 0.0
        self.ttft_n = self.ttft = self.itl_n = self.itl = 0.0
        self.measured = self.ttft_missed = self.itl_missed = self.unreachable = 0

    def add(self, t: dict, now_ms: float) -> None:
        self.duration += float(t.get("duration_s") or 0.0)
        self.n += int(t.get("num_req") or 0)
        # the engine averages prompt and output lengths over `shape_count` requests, not num_req
        shapes = int(t.get("shape_count") or 0)
        if shapes:
            self.shapes += shapes
            self.isl += float(t.get("avg_isl") or 0.0) * shapes
            self.osl += float(t.get("avg_osl") or 0.0) * shapes
        while self.next_arrival < len(self.arrivals) and self.arrivals[self.next_arrival][0] <= now_ms:
            if self.unloaded is not None and self.unloaded(self.arrivals[self.next_arrival][1]) > self.ttft_ms:
                self.unreachable += 1
            self.next_arrival += 1
        tn, itn = int(t.get("ttft_count") or 0), int(t.get("itl_count") or 0)
        if tn and t.get("avg_ttft_ms") is not None:
            avg = float(t["avg_ttft_ms"])
            self.ttft_n, self.ttft = self.ttft_n + tn, self.ttft + avg * tn
            self.measured += tn
            self.ttft_missed += tn if avg > self.ttft_ms else 0
        if itn and t.get("avg_itl_ms") is not None:
            avg = float(t["avg_itl_ms"])
            self.itl_n, self.itl = self.itl_n + itn, self.itl + avg * itn
            self.itl_missed += itn if avg > self.itl_ms else 0

    def window(self) -> TrafficWindow:
        n = int(self.n)
        return TrafficWindow(
            duration_s=self.duration, num_requests=n,
            # as snapshot_to_observation reads a window: no lengths without arrivals
            avg_isl=self.isl / self.shapes if self.shapes and n else None,
            avg_osl=self.osl / self.shapes if self.shapes and n else None,
            avg_ttft_ms=self.ttft / self.ttft_n if self.ttft_n else None,
            avg_itl_ms=self.itl / self.itl_n if self.itl_n else None,
            slo=SLOCounts(self.measured, self.ttft_missed, min(self.itl_missed, self.measured or self.itl_missed),
                          self.unreachable))


class PolicyBridge:
    """The object the engine calls: `initial_tick_ms()` and `on_tick(snapshot)`."""

    def __init__(self, policy: Policy, capacity_tokens: int,
                 on_point: Callable[[TimelinePoint], None] | None = None, offset_s: float = 0.0,
                 ttft_ms: float = 500.0, itl_ms: float = 50.0,
                 unloaded_ttft_ms: Callable[[float], float] | None = None,
                 arrivals: list[tuple[float, int, tuple[int, float | None]]] | None = None) -> None:
        self.policy, self.capacity, self.offset_s = policy, capacity_tokens, offset_s
        self.timeline: list[TimelinePoint] = []
        self.on_point = on_point
        self.errors: list[BaseException] = []
        probe = getattr(policy, "slo_probe_s", None)
        self.probe_s: float | None = float(probe) if probe else None
        self.tally = _SLOTally(ttft_ms, itl_ms, unloaded_ttft_ms, arrivals) if self.probe_s else None
        self.next_decision_ms = 0.0
        # prompt lengths as the frontend sees them on arrival (live: its ISL histogram), with what
        # of each an earlier request had and how long ago (dynamo_scaling.traces.prefix_reuse), for
        # a policy that sizes from their distribution (an `observe_prompts(lengths, reuse)` method)
        self.observe_prompts = getattr(policy, "observe_prompts", None)
        self.arrivals, self.next_prompt = arrivals or [], 0

    def _prompts_until(self, now_ms: float) -> tuple[list[int], list[tuple[int, float | None]]]:
        start = self.next_prompt
        while self.next_prompt < len(self.arrivals) and self.arrivals[self.next_prompt][0] <= now_ms:
            self.next_prompt += 1
        new = self.arrivals[start:self.next_prompt]
        return [a[1] for a in new], [a[2] for a in new]

    def initial_tick_ms(self) -> float:
        if self.probe_s:
            self.next_decision_ms = float(self.policy.initial_tick_s()) * 1000.0
            return self.probe_s * 1000.0
        return float(self.policy.initial_tick_s()) * 1000.0

    def on_tick(self, snap: dict) -> dict:
        now_ms = float(snap["now_ms"])
        if self.tally is not None:
            self.tally.add(snap.get("traffic") or {}, now_ms)
            if now_ms + 1e-6 < self.next_decision_ms:  # a probe tick: count, keep the fleet
                return {"target_prefill": None, "target_decode": None,
                        "next_tick_ms": now_ms + min(self.probe_s * 1000.0, self.next_decision_ms - now_ms)}
        try:
            obs = snapshot_to_observation(snap, self.capacity, self.offset_s)
            if self.tally is not None:
                obs = Observation(obs.now_s, self.tally.window(), obs.prefill, obs.decode,
                                  obs.gpus_per_prefill_worker, obs.gpus_per_decode_worker)
                self.tally.reset()
            if self.observe_prompts is not None:
                lengths, reuse = self._prompts_until(now_ms)
                self.observe_prompts(lengths, reuse)
            decision: Decision = self.policy.decide(obs)
        except BaseException as exc:  # an exception inside the engine callback is hard to trace
            self.errors.append(exc)
            raise
        nxt = decision.next_tick_s if decision.next_tick_s is not None else self.policy.initial_tick_s()
        point = TimelinePoint(
            obs.now_s, obs.traffic.request_rate, obs.traffic.avg_isl, obs.traffic.avg_ttft_ms,
            obs.traffic.avg_itl_ms, (obs.prefill.active, obs.prefill.starting, obs.prefill.draining),
            (obs.decode.active, obs.decode.starting, obs.decode.draining),
            decision.target_prefill, decision.target_decode, decision.reason,
            decision.details.forecast_rate,
        )
        self.timeline.append(point)
        if self.on_point:
            self.on_point(point)
        step_ms = max(0.05, float(nxt)) * 1000.0
        self.next_decision_ms = now_ms + step_ms
        return {
            "target_prefill": None if decision.target_prefill is None else max(0, int(decision.target_prefill)),
            "target_decode": None if decision.target_decode is None else max(0, int(decision.target_decode)),
            "next_tick_ms": now_ms + (min(step_ms, self.probe_s * 1000.0) if self.probe_s else step_ms),
        }


@dataclass
class ReplayRun:
    policy: str
    summary: dict
    per_request: list[dict]
    lifecycle: list[dict]
    timeline: list[TimelinePoint]
    wall_seconds: float
    config: EngineConfig
    extra: dict = field(default_factory=dict)
    offset_s: float = 0.0  # trace time of the engine's zero; per-request and lifecycle times are in trace time

    @property
    def end_s(self) -> float:
        return self.offset_s + float(self.summary.get("duration_ms", 0.0)) / 1000.0


def run(requests: list[Request], policy: Policy, config: EngineConfig,
        on_point: Callable[[TimelinePoint], None] | None = None,
        unloaded_ttft_ms: Callable[[float], float] | None = None) -> ReplayRun:
    """`unloaded_ttft_ms(isl)`: the profile's TTFT on an idle worker, so the SLA counts can tell
    prompts no capacity can serve in time (only for policies that ask for SLA counts)."""
    # the KV router logs each worker it selects at info: megabytes a minute
    os.environ.setdefault("DYN_LOG", "error")
    from dynamo import _core  # the engine is heavy to import; only replay needs it

    # the engine starts its clock at the first request; everything we hand out is in trace time
    offset_s = min((r.timestamp_ms for r in requests), default=0.0) / 1000.0
    reuse = prefix_reuse(requests, config.trace_block_size)
    arrivals = sorted(((r.timestamp_ms - offset_s * 1000.0, r.input_length, ru) for r, ru in zip(requests, reuse)),
                      key=lambda a: a[0])
    bridge = PolicyBridge(policy, config.kv_capacity_tokens, on_point, offset_s, config.ttft_ms, config.itl_ms,
                          unloaded_ttft_ms, arrivals)
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        trace = write_mooncake(requests, Path(tmp) / "trace.jsonl")
        started = time.perf_counter()
        result = _core.run_mocker_trace_replay(
            [str(trace)],
            prefill_engine_args=config.engine_args("prefill"),
            decode_engine_args=config.engine_args("decode"),
            num_prefill_workers=config.initial_prefill,
            num_decode_workers=config.initial_decode,
            trace_block_size=config.trace_block_size, router_mode=config.router_mode,
            sla_ttft_ms=config.ttft_ms, sla_itl_ms=config.itl_ms,
            scaling_policy=bridge, capture_per_request=True,
        )
        wall = time.perf_counter() - started
    if bridge.errors:
        raise RuntimeError(f"policy {policy.name!r} failed inside the replay") from bridge.errors[0]
    per_request = [{**r, "arrival_time_ms": float(r["arrival_time_ms"]) + offset_s * 1000.0}
                   for r in result.per_request]
    lifecycle = [{**op, "at_ms": float(op.get("at_ms", 0.0)) + offset_s * 1000.0}
                 for op in result.lifecycle_operations]
    return ReplayRun(policy.name, dict(result.summary), per_request, lifecycle, bridge.timeline, wall, config,
                     offset_s=offset_s)
