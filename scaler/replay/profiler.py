"""Profile the replay engine's worker the way a pre-deployment profiler profiles a real engine:
sweep prompt lengths for prefill, batch size x context for decode, and record latency and
throughput per GPU.

Decode is swept one of two ways. `burst` admits the whole batch at once and reads the ITL of that
batch decoding in lockstep. `steady` keeps the batch decoding under Poisson arrivals (the rate
from Little's law: sequences = rate x output length x ITL, refined from the measured ITL) and
reads the ITL and the sequences actually decoding over the run's second half: what a served
deployment sees, where every step also admits newly arrived requests. On the mocker the two
agree for small batches and part at large ones: context 1,000, 256 sequences 10.4 -> 19.3 ms;
context 16,000, 64 sequences 10.7 -> 37.5 ms (the bundled profile is the burst sweep)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from scaler.policy import Decision, Observation
from scaler.profile import DecodeProfile, PerformanceProfile, PrefillProfile
from scaler.replay.engine import EngineConfig, run
from dynamo_scaling.traces import Request

log = logging.getLogger(__name__)

PREFILL_ISL = (256, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
DECODE_CONTEXT = (1000, 4000, 16000, 32000)
DECODE_BATCH = (1, 8, 32, 64, 128, 256)
DECODE_SWEEPS = ("burst", "steady")


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


def burst_decode_point(batch: int, context: int, cfg: EngineConfig, osl: int = 200) -> float:
    res = run([Request(i * 0.01, context, osl) for i in range(batch)], _Hold(), cfg)
    itls = [p["itl_ms"] for p in res.per_request if p.get("itl_ms")]
    return float(np.mean(itls)) if itls else float("nan")


def _decoding(res, since_ms: float, until_ms: float) -> float:
    """Mean sequences decoding over [since_ms, until_ms] (admitted to decode, not yet finished)."""
    busy = 0.0
    for p in res.per_request:
        a, b = p.get("decode_admit_ms"), p.get("terminal_time_ms")
        if a is not None and b is not None:
            busy += max(0.0, min(b, until_ms) - max(a, since_ms))
    return busy / (until_ms - since_ms)


def steady_decode_point(batch: int, context: int, cfg: EngineConfig, osl: int = 200, seed: int = 0,
                        sequences: int | None = None, runs: int = 4,
                        prefill_tokens_s: float | None = None) -> tuple[float, float]:
    """(sequences decoding, ITL ms) with about `batch` sequences kept decoding by Poisson arrivals.

    The first run's rate is the one the lockstep ITL implies (Little's law); each further run
    corrects it by the sequences the last one held, damped (a faster rate also slows every step),
    until they are within 15 % of `batch` or `runs` runs are done. Each run has `sequences`
    requests (default: enough to turn the batch over ten times, at least 200), read over its
    second half, past the fill-up. Prefill workers are added so prefill never limits the rate,
    by a prefill worker's throughput at `context` (`prefill_tokens_s`; measured here if not given)."""
    rng = np.random.default_rng(seed)
    n = sequences or max(200, 10 * batch)
    itl = burst_decode_point(batch, context, cfg, osl)
    if not np.isfinite(itl) or itl <= 0:
        return float("nan"), float("nan")
    per_prefill = prefill_tokens_s or _prefill_point(context, cfg)[1]
    rate = batch / (osl * itl / 1000.0)
    held, measured = float("nan"), float("nan")
    for _ in range(runs):
        arrivals_ms = np.cumsum(rng.exponential(1000.0 / rate, n))
        prefills = int(np.ceil(2.0 * rate * context / per_prefill)) + 1
        res = run([Request(float(t), context, osl) for t in arrivals_ms], _Hold(),
                  replace(cfg, initial_prefill=max(cfg.initial_prefill, prefills)))
        since = float(arrivals_ms[n // 2])
        half = [p["itl_ms"] for p in res.per_request if p["arrival_time_ms"] >= since and p.get("itl_ms")]
        if not half:
            break
        held, measured = _decoding(res, since, float(arrivals_ms[-1])), float(np.mean(half))
        if held <= 0 or abs(held / batch - 1.0) <= 0.15:
            break
        rate *= (batch / held) ** 0.7
    return held, measured


def sweep(cfg: EngineConfig | None = None, progress: Callable[[str], None] | None = None,
          decode: str = "burst") -> PerformanceProfile:
    """The engine's profile; `decode` is how the decode points are read: `burst` or `steady`
    (see the module docstring)."""
    if decode not in DECODE_SWEEPS:
        raise ValueError(f"decode: {decode!r} is not one of {', '.join(DECODE_SWEEPS)}")
    cfg = cfg or EngineConfig(startup_s=0.0)
    say = progress or (lambda msg: log.info(msg))
    isl, ttft, thpt = [], [], []
    for i, n in enumerate(PREFILL_ISL, 1):
        t, th = _prefill_point(n, cfg)
        isl.append(n), ttft.append(t), thpt.append(th)
        say(f"prefill {i}/{len(PREFILL_ISL)}: ISL {n}: TTFT {t:.0f} ms, {th:,.0f} tok/s")
    prefill_at = dict(zip(isl, thpt))  # the steady sweep's prefill workers, from the points above
    xs, ys, itl, dthpt = [], [], [], []
    cap = cfg.kv_capacity_tokens
    total = len(DECODE_CONTEXT) * len(DECODE_BATCH)
    k = 0
    for ctx in DECODE_CONTEXT:
        for b in DECODE_BATCH:
            k += 1
            if b * (ctx + 200) > cap:  # beyond the KV cache the engine queues: not a decode point
                continue
            if decode == "steady":
                held, v = steady_decode_point(b, ctx, cfg, prefill_tokens_s=prefill_at.get(ctx))
            else:
                held, v = float(b), burst_decode_point(b, ctx, cfg)
            if not (np.isfinite(v) and np.isfinite(held) and held > 0):
                continue
            xs.append(held * (ctx + 100) / cap), ys.append(ctx), itl.append(v), dthpt.append(held / v * 1000.0)
            say(f"decode {k}/{total}: context {ctx}, batch {b} ({held:.0f} decoding): ITL {v:.1f} ms, "
                f"{held / v * 1000:,.0f} tok/s")
    return PerformanceProfile(
        PrefillProfile(np.array(isl, float), np.array(ttft), np.array(thpt)),
        DecodeProfile(np.array(xs), np.array(ys, float), np.array(itl), np.array(dthpt), float(cap)),
        source=f"replay-engine sweep (ai-dynamo-runtime mocker defaults, {decode} decode)",
    )
