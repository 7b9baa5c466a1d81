"""Why feasible requests missed: TTFT on a prompt an idle worker serves in time, TTFT on one
met only from a prefix cache, or ITL."""

from __future__ import annotations

from collections import Counter

from scaler.profile import bundled_profile
from scaler.replay.baselines import Static
from scaler.replay.engine import EngineConfig, ReplayRun, run
from scaler.replay.scoring import feasible_keys, miss_classes, score
from dynamo_scaling.traces import Request


def _req(t_ms: float, isl: int, ttft: float | None, itl: float | None, osl: int = 10) -> dict:
    return {"arrival_time_ms": t_ms, "input_length": isl, "output_length": osl, "ttft_ms": ttft, "itl_ms": itl}


def test_each_miss_is_put_in_one_class_and_only_feasible_scored_ones_count():
    idle = lambda isl: isl / 40.0  # noqa: E731  (ms; 20,000 tokens and beyond exceed 500 ms)
    per = [
        _req(0, 1000, 900, 10),       # warm-up: not scored
        _req(2000, 1000, 700, 10),    # TTFT, reachable when idle
        _req(3000, 30000, 600, 10),   # TTFT, beyond an idle worker: met only from a cache
        _req(4000, 1000, 100, 80),    # ITL
        _req(5000, 1000, 800, 90),    # both: counted as TTFT
        _req(6000, 1000, None, None),  # never served: TTFT
        _req(7000, 1000, 100, 10),    # met
        _req(8000, 5000, 100, None),  # one token: no ITL, met
        _req(9000, 40000, 900, 10),   # missed, but the ceiling missed it too: not feasible
    ]
    feasible = Counter(((round(float(r["arrival_time_ms"]), 3), r["input_length"], r["output_length"])
                        for r in per[:-1]))
    r = ReplayRun("p", {}, per, [], [], 0.0, EngineConfig(ttft_ms=500.0, itl_ms=50.0))
    assert miss_classes(r, feasible, idle, from_s=1.0) == {"ttft": 3, "ttft_cached": 1, "itl": 1}
    s = score(r, "t", feasible, from_s=1.0)
    assert s["feasible_requests"] == 7 and abs(s["feasible_attainment"] - 2 / 7) < 1e-12


def test_a_repeated_long_prompt_is_met_only_from_the_prefix_cache_of_an_idle_worker():
    # every 3 s: a fresh 40k-token prompt (0.83 s on an idle worker, beyond the 500 ms target),
    # the same 40k-token prompt again (its blocks cached after the first time), and a 2k-token one
    prof = bundled_profile()
    shared = tuple(range(79))
    reqs = []
    for k in range(12):
        t = k * 3000.0
        reqs += [Request(t, 40000, 5, tuple(range(1000 + 100 * k, 1079 + 100 * k))),
                 Request(t + 100, 40000, 5, shared),
                 Request(t + 200, 2000, 5, tuple(range(5000 + 4 * k, 5004 + 4 * k)))]

    def play(prefill: int) -> ReplayRun:
        return run(reqs, Static(prefill, 2), EngineConfig(startup_s=0.0, initial_prefill=prefill, initial_decode=2,
                                                          router_mode="kv_router"))

    feasible = feasible_keys(play(8))
    repeats = sum(n for (_, isl, _), n in feasible.items() if isl == 40000)
    # fresh long prompts are beyond reach, the short ones are feasible, and so are the repeats after
    # the first (the KV router's tie-break is not seeded: with the fresh prompt on the cache's
    # worker, a repeat may be sent to another one and miss even on this fleet)
    assert sum(feasible.values()) - repeats == 12 and repeats >= 9
    # one worker: each repeat waits behind the fresh prompt, each short one behind both
    assert miss_classes(play(1), feasible, prof.prefill.ttft_ms_at) == {"ttft": 12, "ttft_cached": repeats, "itl": 0}
