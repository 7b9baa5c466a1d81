"""Profile the replay engine's worker the way a pre-deployment profiler profiles a real engine:
sweep prompt lengths for prefill, batch size x context for decode, and record latency and
throughput per GPU."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from scaler.policy import Decision, Observation
from scaler.profile import DecodeProfile, PerformanceProfile, PrefillProfile
from scaler.replay.engine import EngineConfig, run
from dynamo_scaling.traces import Request

log = logging.getLogger(__name__)

PREFILL_ISL = (256, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
DECODE_CONTEXT = (1000, 4000, 16000, 32000)
DECODE_BATCH = (1, 8, 32, 64, 128, 256)


class _Hold:
    name = "hold"

    def initial_tick_s(self) -> float:
        return 3600.0

    def decide(self, obs: Observation) -> Decision:
        return Decision(next_tick_s=3600.0)


def _prefill_point(isl: int, cfg: EngineConfig) -> tuple[float, float]:
    single = run([Request(0.0, isl, 2)], _Hold(), cfg).per_request[0]["ttft_ms"]
    burst = max(4, min(64, 400_000 // isl))
    res = run([Request(i * 0.01, isl, 2) for i in range(burst)], _Hold(), cfg)
    last_ms = max(p["first_token_ms"] for p in res.per_request)
    return float(single), burst * isl / (last_ms / 1000.0)


def _decode_point(batch: int, context: int, cfg: EngineConfig, osl: int = 200) -> float:
    res = run([Request(i * 0.01, context, osl) for i in range(batch)], _Hold(), cfg)
    itls = [p["itl_ms"] for p in res.per_request if p.get("itl_ms")]
    return float(np.mean(itls)) if itls else float("nan")


def sweep(cfg: EngineConfig | None = None, progress: Callable[[str], None] | None = None) -> PerformanceProfile:
    cfg = cfg or EngineConfig(startup_s=0.0)
    say = progress or (lambda msg: log.info(msg))
    isl, ttft, thpt = [], [], []
    for i, n in enumerate(PREFILL_ISL, 1):
        t, th = _prefill_point(n, cfg)
        isl.append(n), ttft.append(t), thpt.append(th)
        say(f"prefill {i}/{len(PREFILL_ISL)}: ISL {n}: TTFT {t:.0f} ms, {th:,.0f} tok/s")
    xs, ys, itl, dthpt = [], [], [], []
    cap = cfg.kv_capacity_tokens
    total = len(DECODE_CONTEXT) * len(DECODE_BATCH)
    k = 0
    for ctx in DECODE_CONTEXT:
        for b in DECODE_BATCH:
            k += 1
            if b * (ctx + 200) > cap:  # beyond the KV cache the engine queues: not a decode point
                continue
            v = _decode_point(b, ctx, cfg)
            if not np.isfinite(v):
                continue
            xs.append(b * (ctx + 100) / cap), ys.append(ctx), itl.append(v), dthpt.append(b / v * 1000.0)
            say(f"decode {k}/{total}: context {ctx}, batch {b}: ITL {v:.1f} ms, {b / v * 1000:,.0f} tok/s")
    return PerformanceProfile(
        PrefillProfile(np.array(isl, float), np.array(ttft), np.array(thpt)),
        DecodeProfile(np.array(xs), np.array(ys, float), np.array(itl), np.array(dthpt), float(cap)),
        source="replay-engine sweep (ai-dynamo-runtime mocker defaults)",
    )
