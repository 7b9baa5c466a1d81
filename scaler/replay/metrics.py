"""Score a replay run: SLA attainment (overall and among feasible requests), latency
percentiles, GPU-hours, peak GPUs and scale events."""

from __future__ import annotations

from collections import Counter

import numpy as np

from scaler.replay.engine import ReplayRun


def _key(r: dict) -> tuple:
    return (round(float(r["arrival_time_ms"]), 3), int(r["input_length"]), int(r.get("requested_output_length") or r["output_length"]))


def meets(r: dict, ttft_ms: float, itl_ms: float) -> bool:
    ttft, itl = r.get("ttft_ms"), r.get("itl_ms")
    if ttft is None or ttft > ttft_ms:
        return False
    return itl is None or itl <= itl_ms  # one-token answers have no ITL


def feasible_keys(ceiling: ReplayRun) -> Counter:
    cfg = ceiling.config
    return Counter(_key(r) for r in ceiling.per_request if meets(r, cfg.ttft_ms, cfg.itl_ms))


def max_gpus(run: ReplayRun) -> int:
    """Most workers billed at once (active + starting + draining, both pools)."""
    latest = {"prefill": run.config.initial_prefill, "decode": run.config.initial_decode}
    best = sum(latest.values())
    for op in run.lifecycle:
        state = op.get("state_after_batch") or {}
        latest[op.get("pool", "")] = sum(len(state.get(k, [])) for k in ("active", "starting", "draining"))
        best = max(best, latest["prefill"] + latest["decode"])
    return best


def score(run: ReplayRun, trace: str, feasible: Counter | None = None) -> dict:
    cfg = run.config
    reqs = run.per_request
    ttft = np.array([r["ttft_ms"] for r in reqs if r.get("ttft_ms") is not None], float)
    itl = np.array([r["itl_ms"] for r in reqs if r.get("itl_ms") is not None], float)
    ok = [meets(r, cfg.ttft_ms, cfg.itl_ms) for r in reqs]
    out = {
        "planner": run.policy,
        "trace": trace,
        "requests": len(reqs),
        "completed": int(run.summary.get("completed_requests", len(reqs))),
        "sla_attainment": float(np.mean(ok)) if reqs else 0.0,
        "ttft_p50_ms": float(np.percentile(ttft, 50)) if ttft.size else None,
        "ttft_p99_ms": float(np.percentile(ttft, 99)) if ttft.size else None,
        "itl_p50_ms": float(np.percentile(itl, 50)) if itl.size else None,
        "itl_p99_ms": float(np.percentile(itl, 99)) if itl.size else None,
        "gpu_hours": float(run.summary.get("gpu_hours", 0.0)),
        "max_gpus": max_gpus(run),
        "scale_events": sum(1 for op in run.lifecycle if op.get("cause") == "planner_scale"),
        "startup_s": cfg.startup_s,
        "ttft_target_ms": cfg.ttft_ms,
        "itl_target_ms": cfg.itl_ms,
        "wall_seconds": run.wall_seconds,
    }
    if feasible is not None:
        budget = Counter(feasible)
        hit = total = 0
        for r, good in zip(reqs, ok):
            k = _key(r)
            if budget[k] > 0:
                budget[k] -= 1
                total += 1
                hit += good
        out["feasible_requests"] = total
        out["feasible_attainment"] = hit / total if total else 1.0
    return out
