"""A decode worker runs at most max_num_seqs sequences at once (the replay mocker's default: 256);
beyond that requests wait for a slot and their first token with them, while the KV cache
is only half full. Real engine, real planner: the default planner has to see a pool at its
sequence cap as full, whatever its KV usage and the profile say."""

from __future__ import annotations

import numpy as np

from benchmarks.traffic_shapes import arrival_times
from scaler.policy import Decision, Observation
from scaler.profile import bundled_profile
from scaler.replay import policies
from scaler.replay.engine import run
from scaler.replay.runner import Setting, initial_fleet
from scaler.replay.scoring import meets
from dynamo_scaling.traces import Request

RATE, ISL, OSL = 44.0, 2000, 230  # ~250 sequences in flight on one decode worker


def _arrivals(rate, seconds: float) -> list[Request]:
    return [Request(float(t) * 1000.0, ISL, OSL) for t in arrival_times(rate, seconds, np.random.default_rng(5))]


class _Watch:
    name = "watch"

    def __init__(self) -> None:
        self.decode: list[tuple[int, int, float | None]] = []

    def initial_tick_s(self) -> float:
        return 5.0

    def decide(self, obs: Observation) -> Decision:
        self.decode.append((obs.decode.running_requests, obs.decode.queued_requests, obs.decode.kv_usage))
        return Decision(next_tick_s=5.0)


def test_one_decode_worker_fills_its_sequence_slots_with_the_kv_cache_half_empty():
    reqs = _arrivals(lambda t: RATE, 90.0)
    watch = _Watch()
    setting = Setting("cap", reqs, bundled_profile(), startup_s=0.0)
    run(reqs, watch, setting.engine((16, 1)), None, setting.profile.prefill.ttft_ms_at)
    late = watch.decode[len(watch.decode) // 2:]
    assert max(r for r, _, _ in late) == 256
    assert max(q for _, q, _ in late) > 0
    assert max(kv or 0.0 for _, _, kv in late) < 0.7


def test_the_default_planner_adds_decode_workers_before_sequences_queue_on_a_ramp():
    # load rising steadily to RATE over ten minutes, then held: no burst for a headroom to catch
    reqs = _arrivals(lambda t: min(RATE, 5.0 + (RATE - 5.0) * t / 600.0), 840.0)
    setting = Setting("cap", reqs, bundled_profile(), startup_s=60.0, attainment_target=0.95)
    planner = policies.make("predictive", setting.context())
    played = run(reqs, planner, setting.engine(initial_fleet(setting, planner)), None,
                 setting.profile.prefill.ttft_ms_at)
    # the profile alone sees one decode worker as enough for this load
    assert max(p.target_decode for p in played.timeline) >= 2
    scored = [r for r in played.per_request if float(r["arrival_time_ms"]) >= 300_000.0]
    assert np.mean([meets(r, 500.0, 50.0) for r in scored]) >= 0.95
