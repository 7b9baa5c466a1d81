"""Traffic shapes the bundled traces do not have, in the replay engine: a slow ramp into the decode
pool's sequence limit, a step, on/off bursts, long prompts, long answers, a steady high rate, and
arrivals in clumps (steady, growing, shrinking clump sizes; short spikes).
Each shape is a seeded synthetic trace (Poisson arrivals at a rate that follows the shape, or
clumps of a few seconds arriving as Poisson at the same mean rate; log-normal prompt and answer
lengths), played after a 300 s warm-up like benchmarks/replay.py, for
every policy and for the planner without its sequence-slot signal (`predictive-kv-only`,
decode_max_seqs null) as the baseline of the same run. These shapes were written to find faults
the traces do not show, not tuned on. A second set, `--set harsh` (Azure-like clumping), was held
back for one decision and played for it, and so were `--set fresh`, `reserve`, `sealed`, `vault`,
`cellar`, `attic` and `loft`, each written before the decision it was played for; all of these are
spent. `--set annex` is held back for the next decision.

Prints a table and writes benchmarks/results/traffic_shapes.json.
Usage: .venv/bin/python benchmarks/traffic_shapes.py [--set NAME] [--startup 60] [--target 0.99] [--shapes ramp ...]
"""

from __future__ import annotations

import argparse
import bisect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaler.planner.predictive import PredictivePlanner
from scaler.profile import PerformanceProfile, bundled_profile
from scaler.replay import policies
from scaler.replay.runner import Setting, run_policy
from scaler.replay.scoring import feasible_keys, score
from dynamo_scaling.traces import Request

REPO = Path(__file__).resolve().parents[1]
DURATION_S = 900.0
WARMUP_S = 300.0
POLICIES = ("predictive", "predictive-kv-only", "static", "hpa", "dynamo-load", "dynamo-throughput", "oracle")


@dataclass(frozen=True)
class Shape:
    rate: Callable[[float], float]  # requests per second at t
    isl: tuple[float, float]  # log-normal median and sigma of prompt tokens
    osl: tuple[float, float]  # the same for answer tokens
    what: str
    clump: Callable[[float], float] | None = None  # mean requests per clump at t (None: Poisson arrivals)
    clump_s: float = 5.0  # a clump's requests arrive within this many seconds


SHAPES = {
    "ramp": Shape(lambda t: 1 + 40 * t / DURATION_S, (2000, 0.6), (200, 0.6),
                  "1 to 41 req/s over 15 min: decode reaches its sequence limit before its KV limit"),
    "step": Shape(lambda t: 3.0 if t < 450 else 30.0, (2000, 0.6), (200, 0.6), "3 req/s, then 30 from 450 s"),
    "on_off": Shape(lambda t: 25.0 if t % 300 < 60 else 0.0, (2000, 0.6), (200, 0.6),
                    "25 req/s for one minute in five, nothing between"),
    "long_prompts": Shape(lambda t: 1.0, (30000, 0.8), (100, 0.5), "1 req/s, prompts around 30k tokens"),
    "long_answers": Shape(lambda t: 2.0, (500, 0.5), (4000, 0.5), "2 req/s, answers around 4k tokens"),
    "steady_high": Shape(lambda t: 60.0, (1500, 0.7), (150, 0.7), "60 req/s throughout"),
    # clumped arrivals, as production traffic has them (batch jobs, retries, fan-out); written
    # before the trend-horizon comparison they serve, and not tuned on
    "clumps": Shape(lambda t: 4.0, (2000, 0.6), (200, 0.6), "4 req/s in clumps of 20 within 5 s",
                    clump=lambda t: 20.0),
    "clumps_growing": Shape(lambda t: 4.0, (2000, 0.6), (200, 0.6), "4 req/s, clumps growing from 3 to 40",
                            clump=lambda t: 3.0 + 37.0 * t / DURATION_S),
    "clumps_shrinking": Shape(lambda t: 4.0, (2000, 0.6), (200, 0.6), "4 req/s, clumps shrinking from 40 to 3",
                              clump=lambda t: 40.0 - 37.0 * t / DURATION_S),
    "spikes": Shape(lambda t: 40.0 if t % 180 < 5 else 2.0, (2000, 0.6), (200, 0.6),
                    "2 req/s, and 40 req/s for 5 s every 3 minutes"),
}

# Written before any policy played them and held back for a decision on burst headroom or clumping
# (played for "Clumping measured above the default", docs/planner.md): modelled on the Azure code
# trace's clumping (index of dispersion of counts about 9 at 1 s and 100 at 5 s, clumps growing
# through a window, clumps in clusters) and its short answers.
HARSH = {
    "harsh_clumps": Shape(lambda t: 12.0, (2000, 0.9), (30, 0.8), "12 req/s in clumps of 60 within 5 s",
                          clump=lambda t: 60.0),
    "harsh_clusters": Shape(lambda t: 24.0 if t % 180 < 60 else 6.0, (2000, 0.9), (30, 0.8),
                            "clumps of 40 within 5 s, 24 req/s for a minute in three and 6 between",
                            clump=lambda t: 40.0),
    "harsh_growing": Shape(lambda t: 12.0, (2000, 0.9), (30, 0.8), "12 req/s, clumps growing from 10 to 150",
                           clump=lambda t: 10.0 + 140.0 * t / DURATION_S),
    "harsh_step": Shape(lambda t: 4.0 if t < 450 else 20.0, (2000, 0.9), (30, 0.8),
                        "4 req/s in clumps of 20, then 20 req/s in clumps of 100 from 450 s",
                        clump=lambda t: 20.0 if t < 450 else 100.0),
}


def _trains(t: float) -> float:
    """3 req/s, and every 4 minutes a train of three 10 s spikes of 30 req/s, 20 s apart."""
    k = t % 240
    return 30.0 if k < 70 and k % 30 < 10 else 3.0


# Held back for the decision after the harsh set's: written before any policy played them, unlike
# anything the other sets hold (a cycle, a wide prompt mix, trains of spikes, a clumped decline).
# Play them with `--set fresh` only once a rule for that decision is written down.
FRESH = {
    "fresh_cycle": Shape(lambda t: 4.0 + 14.0 * (1.0 - np.cos(2.0 * np.pi * t / 600.0)), (1500, 0.8), (250, 0.7),
                         "4 to 32 req/s and back every 10 minutes, smoothly"),
    "fresh_mixed": Shape(lambda t: 8.0, (1200, 1.3), (120, 0.8),
                         "8 req/s, prompts with a wide spread (one in twenty above 10k tokens)"),
    "fresh_trains": Shape(_trains, (2000, 0.6), (200, 0.6),
                          "3 req/s, and every 4 minutes three 10 s spikes of 30 req/s, 20 s apart"),
    "fresh_decline": Shape(lambda t: 40.0 - 36.0 * t / DURATION_S, (2000, 0.6), (100, 0.6),
                           "40 down to 4 req/s over 15 minutes, in clumps of 8 within 2 s",
                           clump=lambda t: 8.0, clump_s=2.0),
}


def _surge(t: float) -> float:
    """5 req/s; from 300 s rising to 35 over two minutes, held three, back to 5 at 600 s."""
    if 300.0 <= t < 420.0:
        return 5.0 + 30.0 * (t - 300.0) / 120.0
    return 35.0 if 420.0 <= t < 600.0 else 5.0


# A fixed, irregular sequence of levels, one per 30 s: regime switches no forecast can extrapolate.
_REGIMES = (6.0, 24.0, 10.0, 24.0, 6.0, 16.0, 30.0, 8.0, 8.0, 20.0, 4.0, 26.0, 12.0, 18.0, 6.0,
            28.0, 10.0, 6.0, 22.0, 14.0, 30.0, 4.0, 16.0, 8.0, 24.0, 12.0, 6.0, 20.0, 10.0, 26.0)


def _regimes(t: float) -> float:
    return _REGIMES[int(t // 30.0) % len(_REGIMES)]


# Held back for the decision after the fresh set's ("Headroom not learned from bursts" played that
# one, docs/planner.md): written before any policy played them, unlike anything the other sets hold
# (a surge with a ramp, decode-heavy answers on a cycle, regime switches every 30 s, Poisson traffic
# turning clumpy). Play them with `--set reserve` only once a rule for that decision is written down.
RESERVE = {
    "reserve_surge": Shape(_surge, (1800, 0.7), (150, 0.7),
                           "5 req/s, a surge to 35 over two minutes from 300 s, held three, then back"),
    "reserve_decode_cycle": Shape(lambda t: 2.0 + 5.0 * (1.0 - np.cos(2.0 * np.pi * t / 360.0)), (800, 0.6),
                                  (1000, 0.5), "2 to 12 req/s and back every 6 minutes, answers around 1k tokens"),
    "reserve_regimes": Shape(_regimes, (2000, 0.6), (150, 0.6), "a new level every 30 s, between 4 and 30 req/s"),
    "reserve_turning": Shape(lambda t: 1.0 if t < 450 else 6.0, (2000, 0.6), (100, 0.6),
                             "1 req/s Poisson, then from 450 s 6 req/s in clumps of 30 within 3 s",
                             clump=lambda t: 1.0 if t < 450 else 30.0, clump_s=3.0),
}


def _steps(levels: tuple[float, ...], at_s: tuple[float, ...]) -> Callable[[float], float]:
    """`levels[0]` req/s, then `levels[k]` from `at_s[k - 1]` on."""
    return lambda t: levels[bisect.bisect_right(at_s, t)]


# Held back for the decision after the reserve set's ("A rise that held" played that one,
# docs/planner.md): written before any policy played them. Poisson arrivals at low, middle and high
# load, where a fixed clumping of 9 sizes for clumps that never come, beside a step at low load and
# clumps at middle load, where that margin is what meets them. Play them with `--set sealed` only
# once a rule for that decision is written down.
SEALED = {
    "sealed_late_step": Shape(lambda t: 3.0 if t < 420.0 else 30.0, (1500, 0.7), (200, 0.6),
                              "3 req/s, then 30 from 420 s on, Poisson"),
    "sealed_busy_wave": Shape(lambda t: 40.0 + 10.0 * np.sin(2.0 * np.pi * t / 480.0), (1200, 0.6), (150, 0.6),
                              "30 to 50 req/s on an 8-minute wave, Poisson"),
    "sealed_mid_clumps": Shape(lambda t: 15.0, (1500, 0.6), (150, 0.6), "15 req/s in clumps of 10 within 2 s",
                               clump=lambda t: 10.0, clump_s=2.0),
    "sealed_stairs": Shape(_steps((5.0, 20.0, 45.0), (300.0, 600.0)), (2000, 0.6), (120, 0.6),
                           "5, 20, then 45 req/s, five minutes each, Poisson"),
}


def _light_bursts(t: float) -> float:
    return 25.0 if t % 240.0 < 20.0 and t >= 120.0 else 3.0


# Held back for the decision after the sealed set's ("The clumping margin capped" played that one,
# docs/planner.md): written before any policy played them. Jumps from light load, with and without
# clumps, beside light load that never jumps and light load with short bursts. Play them with
# `--set vault` only once a rule for that decision is written down.
VAULT = {
    "vault_jump": Shape(lambda t: 2.0 if t < 500.0 else 20.0, (1000, 0.6), (150, 0.6),
                        "2 req/s, then 20 from 500 s on, Poisson"),
    "vault_light_steady": Shape(lambda t: 5.0, (1500, 0.6), (150, 0.6), "5 req/s throughout, Poisson"),
    "vault_double_jump": Shape(_steps((4.0, 12.0, 40.0), (300.0, 600.0)), (1500, 0.6), (150, 0.6),
                               "4, 12 from 300 s, 40 from 600 s, in clumps of 5 within 2 s",
                               clump=lambda t: 5.0, clump_s=2.0),
    "vault_light_bursts": Shape(_light_bursts, (1500, 0.6), (150, 0.6),
                                "3 req/s, and 25 for 20 s every 4 minutes from 240 s, Poisson"),
}


def _bursts(base: float, peak: float, start_s: float, every_s: float, length_s: float) -> Callable[[float], float]:
    """`base` req/s, and `peak` for `length_s` every `every_s` from `start_s` on."""
    return lambda t: peak if t >= start_s and (t - start_s) % every_s < length_s else base


def _fast_ramp(t: float) -> float:
    return 3.0 if t < 400.0 else 3.0 + 57.0 * min(1.0, (t - 400.0) / 60.0)


# Held back for the decision after the vault set's ("A margin whatever the target" played that
# one, docs/planner.md): written before any policy played them. Load above the running fleet for
# 5 s and for 30 s, which ends long before a worker asked for it starts, beside load that rises and
# stays (a clumped step and a one-minute ramp), which a fleet must follow. Play them with
# `--set cellar` only once a rule for that decision is written down.
CELLAR = {
    "cellar_big_clumps": Shape(_bursts(8.0, 80.0, 200.0, 150.0, 5.0), (2500, 0.7), (30, 0.6),
                               "8 req/s, and 80 for 5 s every 150 s from 200 s, Poisson"),
    "cellar_half_minute_surges": Shape(_bursts(5.0, 60.0, 250.0, 300.0, 30.0), (2000, 0.6), (150, 0.6),
                                       "5 req/s, and 60 for 30 s every 5 minutes from 250 s, Poisson"),
    "cellar_clumped_step": Shape(lambda t: 4.0 if t < 450.0 else 40.0, (2000, 0.6), (100, 0.6),
                                 "4 req/s, then 40 from 450 s on, in clumps of 8 within 3 s",
                                 clump=lambda t: 8.0, clump_s=3.0),
    "cellar_fast_ramp": Shape(_fast_ramp, (1500, 0.6), (200, 0.6),
                              "3 req/s, rising to 60 over 400-460 s and staying there, Poisson"),
}


def _slow_climb(t: float) -> float:
    return 4.0 + 44.0 * min(1.0, max(0.0, (t - 300.0) / 480.0))


# Held back for the decision after the cellar set's ("A clump is not a backlog for the whole
# start-up" played that one, docs/planner.md): written before any policy played them. Steps that
# leave a queue while workers start, for prompts and for answers, beside surges that come back
# within a scale-down hold and a climb slow enough to leave no queue. Play them with `--set attic`
# only once a rule for that decision is written down.
ATTIC = {
    "attic_step": Shape(lambda t: 5.0 if t < 420.0 else 50.0, (1800, 0.6), (120, 0.6),
                        "5 req/s, then 50 from 420 s on, Poisson"),
    "attic_returning_surges": Shape(_bursts(6.0, 45.0, 240.0, 240.0, 60.0), (1500, 0.6), (150, 0.6),
                                    "6 req/s, and 45 for 60 s every 4 minutes from 240 s, Poisson"),
    "attic_long_answer_step": Shape(lambda t: 3.0 if t < 450.0 else 30.0, (600, 0.6), (500, 0.6),
                                    "3 req/s, then 30 from 450 s on, long answers, Poisson"),
    "attic_slow_climb": Shape(_slow_climb, (2000, 0.6), (100, 0.6),
                              "4 req/s, climbing to 48 over 300-780 s, then staying, Poisson"),
}


def _down_and_up(t: float) -> float:
    return 5.0 if 400.0 <= t < 600.0 else 30.0


# Held back for the decision after the attic set's ("Workers for a queue are not held" played
# that one, docs/planner.md): written before any policy played them. Steps whose queue takes long
# to drain (long prompts, two steps in a row), load that falls and comes back, beside clumped load
# that never steps. Play them with `--set loft` only once a rule for that decision is written down.
LOFT = {
    "loft_long_prompt_step": Shape(lambda t: 2.0 if t < 450.0 else 12.0, (6000, 0.5), (80, 0.6),
                                   "2 req/s, then 12 from 450 s on, prompts of about 6,000 tokens, Poisson"),
    "loft_two_steps": Shape(_steps((5.0, 20.0, 45.0), (350.0, 600.0)), (1500, 0.6), (120, 0.6),
                            "5, 20 from 350 s, 45 from 600 s, Poisson"),
    "loft_down_and_up": Shape(_down_and_up, (1800, 0.6), (100, 0.6),
                              "30 req/s, 5 over 400-600 s, then 30 again, Poisson"),
    "loft_steady_clumps": Shape(lambda t: 20.0, (1500, 0.6), (150, 0.6), "20 req/s in clumps of 6 within 2 s",
                                clump=lambda t: 6.0, clump_s=2.0),
}


def _clusters(base: float, first: float, last: float, every_s: float, length_s: float,
              quiet: tuple[float, float] | None = None) -> Callable[[float], float]:
    """`base` req/s, and clusters of `length_s` every `every_s` whose rate moves from `first` to
    `last` over the shape; nothing at all within `quiet`."""
    def rate(t: float) -> float:
        if quiet is not None and quiet[0] <= t < quiet[1]:
            return 0.0
        return first + (last - first) * t / DURATION_S if t % every_s < length_s else base
    return rate


# Held back for the decision after the loft set's ("No headroom from the drain after a burst"
# played that one, docs/planner.md): written before any policy played them. Clusters like those of
# the Azure code trace over a whole hour: clusters that shrink and clusters that grow through the
# window, clusters that stop for four minutes with no request at all and come back, and a slow
# wave that arrives in clumps. Play them with `--set annex` only once a rule for that decision is
# written down.
ANNEX = {
    "annex_shrinking_clusters": Shape(_clusters(3.0, 100.0, 30.0, 150.0, 30.0), (2000, 0.8), (40, 0.7),
                                      "3 req/s, and for 30 s every 150 s clusters falling from 100 to 30 req/s, "
                                      "Poisson"),
    "annex_growing_clusters": Shape(_clusters(3.0, 30.0, 100.0, 150.0, 30.0), (2000, 0.8), (40, 0.7),
                                    "3 req/s, and for 30 s every 150 s clusters rising from 30 to 100 req/s, "
                                    "Poisson"),
    "annex_quiet_gap": Shape(_clusters(3.0, 60.0, 60.0, 180.0, 20.0, quiet=(480.0, 720.0)), (2000, 0.8),
                             (40, 0.7), "3 req/s and 60 for 20 s every 3 minutes, nothing over 480-720 s, "
                             "Poisson"),
    "annex_clumped_wave": Shape(lambda t: 5.0 + 15.0 * (1.0 - np.cos(2.0 * np.pi * t / 600.0)), (1500, 0.6),
                                (150, 0.6), "a wave from 5 to 35 req/s and back every 10 minutes, in clumps of "
                                "8 within 3 s", clump=lambda t: 8.0, clump_s=3.0),
}
SETS = {"shapes": SHAPES, "harsh": HARSH, "fresh": FRESH, "reserve": RESERVE, "sealed": SEALED, "vault": VAULT,
        "cellar": CELLAR, "attic": ATTIC, "loft": LOFT, "annex": ANNEX}


def arrival_times(rate: Callable[[float], float], duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrivals at rate(t) req/s over [0, duration_s), thinned from the top rate (s)."""
    top = max(rate(t) for t in np.arange(0.0, duration_s, 1.0))
    times = np.cumsum(rng.exponential(1.0 / top, int(top * duration_s * 1.3) + 10))
    times = times[times < duration_s]
    return times[rng.random(times.size) * top < np.array([rate(t) for t in times])]


def clumped_arrival_times(rate: Callable[[float], float], clump: Callable[[float], float], clump_s: float,
                          duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Clumps arriving as Poisson at rate(t) / clump(t), each of 1 + Poisson(clump(t) - 1)
    requests spread uniformly over `clump_s`: the mean rate is rate(t)."""
    starts = arrival_times(lambda t: rate(t) / max(clump(t), 1.0), duration_s, rng)
    sizes = 1 + rng.poisson([max(clump(t), 1.0) - 1.0 for t in starts]) if starts.size else np.zeros(0, int)
    times = np.repeat(starts, sizes) + rng.uniform(0.0, clump_s, int(sizes.sum()))
    return np.sort(times[times < duration_s])


def synthesize(shape: Shape, seed: int = 7) -> list[Request]:
    """The shape's arrivals; lengths drawn per request."""
    rng = np.random.default_rng(seed)
    times = (arrival_times(shape.rate, DURATION_S, rng) if shape.clump is None
             else clumped_arrival_times(shape.rate, shape.clump, shape.clump_s, DURATION_S, rng))
    isl = np.maximum(1, rng.lognormal(np.log(shape.isl[0]), shape.isl[1], times.size)).astype(int)
    osl = np.maximum(1, rng.lognormal(np.log(shape.osl[0]), shape.osl[1], times.size)).astype(int)
    return [Request(float(t) * 1000.0, int(i), int(o)) for t, i, o in zip(times, isl, osl)]


def _kv_only(ctx: policies.RunContext) -> PredictivePlanner:
    return PredictivePlanner(ctx.profile, policies.planner_config(ctx, decode_max_seqs=None), name="predictive-kv-only")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--startup", type=float, default=60.0, help="worker start-up delay, s")
    p.add_argument("--target", type=float, default=0.99, help="attainment_target of the predictive planners")
    p.add_argument("--set", choices=sorted(SETS), default="shapes",
                   help="shapes: the ten played first; harsh: Azure-like clumping; fresh: the next four; "
                   "reserve, sealed, vault, cellar, attic and loft: the next fours, each played for one decision; "
                   "annex: held back for the next")
    p.add_argument("--shapes", nargs="+", choices=sorted(n for shapes in SETS.values() for n in shapes), default=None,
                   help="default: every shape of --set")
    p.add_argument("--policies", nargs="+", default=list(POLICIES))
    p.add_argument("--profile", type=Path, default=None,
                   help="the profile every policy is given (default: the bundled one)")
    p.add_argument("--name", default="traffic_shapes", help="results file benchmarks/results/NAME.json")
    args = p.parse_args()
    policies.register_policy("predictive-kv-only", _kv_only)
    profile = PerformanceProfile.load(args.profile) if args.profile else bundled_profile()
    rows = []
    chosen = SETS[args.set]
    names = args.shapes or list(chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        p.error(f"--shapes: {', '.join(unknown)} not in --set {args.set} (choose from {', '.join(chosen)})")
    for k, name in enumerate(names, 1):
        shape = chosen[name]
        reqs = synthesize(shape)
        setting = Setting(name, reqs, profile, startup_s=args.startup, warmup_s=WARMUP_S,
                          attainment_target=args.target)
        print(f"[{k}/{len(names)}] {name}: {shape.what}; {len(reqs)} requests", flush=True)
        feasible = feasible_keys(run_policy(setting, "ceiling"))
        for policy in args.policies:
            t0 = time.time()
            r = score(run_policy(setting, policy), name, feasible, WARMUP_S)
            row = {"shape": name, "policy": policy, "feasible_attainment": r["feasible_attainment"],
                   "gpu_hours": r["gpu_hours"], "scale_events": r["scale_events"]}
            rows.append(row)
            print(f"    {policy:20s} attainment {row['feasible_attainment']:.3f}  {row['gpu_hours']:.2f} GPU-h  "
                  f"{row['scale_events']} scale events ({time.time() - t0:.0f} s)", flush=True)
    lines = ["| shape | policy | feasible att. | GPU-h | GPU-h vs static | scale events |", "|---|---|---|---|---|---|"]
    for row in rows:
        static = next((s for s in rows if s["shape"] == row["shape"] and s["policy"] == "static"), None)
        ratio = f"{row['gpu_hours'] / static['gpu_hours']:.2f}x" if static and static["gpu_hours"] > 0 else "-"
        row["gpu_hours_vs_static"] = (row["gpu_hours"] / static["gpu_hours"]
                                      if static and static["gpu_hours"] > 0 else None)
        lines.append(f"| {row['shape']} | {row['policy']} | {row['feasible_attainment']:.3f} | "
                     f"{row['gpu_hours']:.2f} | {ratio} | {row['scale_events']} |")
    print("\n".join(lines))
    out = REPO / "benchmarks" / "results" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"set": args.set, "startup_s": args.startup, "target": args.target, "warmup_s": WARMUP_S,
                               "profile": str(args.profile) if args.profile else "bundled",
                               "duration_s": DURATION_S, "rows": rows}, indent=1))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
