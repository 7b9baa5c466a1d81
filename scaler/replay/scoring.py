"""Score a replay run: SLA attainment (overall and among feasible requests), latency
percentiles, GPU-hours, peak GPUs and scale events.

A run may start with a warm-up (`from_s`): its requests are played so that every policy reaches
the window in the state its own decisions led to, but only requests arriving from `from_s` on
are scored, and only the GPUs billed from then on count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np

from scaler.replay.engine import ReplayRun


def _key(r: dict) -> tuple:
    return (round(float(r["arrival_time_ms"]), 3), int(r["input_length"]), int(r.get("requested_output_length") or r["output_length"]))


def _ttft_met(r: dict, ttft_ms: float) -> bool:
    ttft = r.get("ttft_ms")
    return ttft is not None and ttft <= ttft_ms


def _itl_met(r: dict, itl_ms: float) -> bool:
    itl = r.get("itl_ms")
    return itl is None or itl <= itl_ms  # one-token answers have no ITL


def meets(r: dict, ttft_ms: float, itl_ms: float) -> bool:
    return _ttft_met(r, ttft_ms) and _itl_met(r, itl_ms)


def feasible_keys(ceiling: ReplayRun) -> Counter:
    cfg = ceiling.config
    return Counter(_key(r) for r in ceiling.per_request if meets(r, cfg.ttft_ms, cfg.itl_ms))


def scored_feasible(run: ReplayRun, feasible: Counter, from_s: float = 0.0) -> Iterator[dict]:
    """The scored requests among those the ceiling met. Keys are used up in arrival order, the
    warm-up's too (unscored), so a repeated request counts as often as the ceiling met it."""
    budget = Counter(feasible)
    for r in run.per_request:
        k = _key(r)
        if budget[k] > 0:
            budget[k] -= 1
            if float(r["arrival_time_ms"]) >= from_s * 1000.0:
                yield r


MISS_CLASSES = ("ttft", "ttft_cached", "itl")


def miss_classes(run: ReplayRun, feasible: Counter, idle_ttft_ms: Callable[[float], float],
                 from_s: float = 0.0) -> dict[str, int]:
    """Why feasible requests missed: `ttft` on a prompt an idle worker prefills in time (by
    `idle_ttft_ms`, the profile's unloaded TTFT at a prompt length), `ttft_cached` on one it does
    not (the ceiling met it only because most of the prompt was in a worker's prefix cache, so it
    depends on reaching that worker), `itl` with TTFT met. A request that missed both counts as TTFT."""
    cfg = run.config
    out = dict.fromkeys(MISS_CLASSES, 0)
    for r in scored_feasible(run, feasible, from_s):
        if not _ttft_met(r, cfg.ttft_ms):
            out["ttft" if idle_ttft_ms(float(r["input_length"])) <= cfg.ttft_ms else "ttft_cached"] += 1
        elif not _itl_met(r, cfg.itl_ms):
            out["itl"] += 1
    return out


def _billed(run: ReplayRun) -> list[tuple[float, int]]:
    """(time s, GPUs billed from then on: active + starting + draining workers of both pools)."""
    cfg, summary = run.config, run.summary
    per = {"prefill": int(summary.get("prefill_gpus_per_worker") or 1),
           "decode": int(summary.get("decode_gpus_per_worker") or 1)}
    workers = {"prefill": cfg.initial_prefill, "decode": cfg.initial_decode}
    steps = [(run.offset_s, sum(workers[k] * per[k] for k in workers))]
    for op in sorted(run.lifecycle, key=lambda o: float(o.get("at_ms", 0.0))):
        state = op.get("state_after_batch") or {}
        pool = op.get("pool", "")
        if pool not in workers:
            continue
        workers[pool] = sum(len(state.get(k, [])) for k in ("active", "starting", "draining"))
        steps.append((float(op.get("at_ms", 0.0)) / 1000.0, sum(workers[k] * per[k] for k in workers)))
    return steps


def max_gpus(run: ReplayRun, from_s: float = 0.0) -> int:
    """Most GPUs billed at once from `from_s` on."""
    steps = _billed(run)
    billed_at_start = ([g for t, g in steps if t <= from_s] or [steps[0][1]])[-1]
    return max([billed_at_start] + [g for t, g in steps if t > from_s])


def gpu_hours(run: ReplayRun, from_s: float = 0.0) -> float:
    """GPU-hours billed from `from_s` to the end of the run (the engine's own total when 0)."""
    if from_s <= 0:
        return float(run.summary.get("gpu_hours", 0.0))
    steps = _billed(run) + [(max(run.end_s, from_s), 0)]
    total = 0.0
    for (t, g), (t_next, _) in zip(steps, steps[1:]):
        total += g * max(0.0, t_next - max(t, from_s))
    return total / 3600.0


def score(run: ReplayRun, trace: str, feasible: Counter | None = None, from_s: float = 0.0) -> dict:
    cfg = run.config
    scored = [float(r["arrival_time_ms"]) >= from_s * 1000.0 for r in run.per_request]
    met = [meets(r, cfg.ttft_ms, cfg.itl_ms) for r in run.per_request]
    reqs = [r for r, keep in zip(run.per_request, scored) if keep]
    ok = [m for m, keep in zip(met, scored) if keep]
    ttft = np.array([r["ttft_ms"] for r in reqs if r.get("ttft_ms") is not None], float)
    itl = np.array([r["itl_ms"] for r in reqs if r.get("itl_ms") is not None], float)
    out = {
        "planner": run.policy,
        "trace": trace,
        "requests": len(reqs),
        "completed": int(run.summary.get("completed_requests", len(run.per_request)))
        - (len(run.per_request) - len(reqs)),
        "sla_attainment": float(np.mean(ok)) if reqs else 0.0,
        "ttft_p50_ms": float(np.percentile(ttft, 50)) if ttft.size else None,
        "ttft_p99_ms": float(np.percentile(ttft, 99)) if ttft.size else None,
        "itl_p50_ms": float(np.percentile(itl, 50)) if itl.size else None,
        "itl_p99_ms": float(np.percentile(itl, 99)) if itl.size else None,
        "gpu_hours": gpu_hours(run, from_s),
        "max_gpus": max_gpus(run, from_s),
        "scale_events": sum(1 for op in run.lifecycle if op.get("cause") == "planner_scale"
                            and float(op.get("at_ms", 0.0)) >= from_s * 1000.0),
        "startup_s": cfg.startup_s,
        "ttft_target_ms": cfg.ttft_ms,
        "itl_target_ms": cfg.itl_ms,
        "wall_seconds": run.wall_seconds,
        "warmup_s": from_s,
    }
    if feasible is not None:
        hit = total = 0
        for r in scored_feasible(run, feasible, from_s):
            total += 1
            hit += meets(r, cfg.ttft_ms, cfg.itl_ms)
        out["feasible_requests"] = total
        out["feasible_attainment"] = hit / total if total else 1.0
    return out
