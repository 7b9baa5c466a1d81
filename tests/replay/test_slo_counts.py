"""SLA counts in replay (`TrafficWindow.slo`): what the error-budget loop reads between decisions
must agree with the per-request results the engine returns at the end of the run, which the
score uses. Real replay engine, bundled trace."""

from __future__ import annotations

import pytest

from scaler.policy import Decision, Observation
from scaler.profile import bundled_profile
from scaler.replay.engine import EngineConfig, run
from dynamo_scaling.traces import read_trace, scale_rate, window


class Fixed:
    """A fleet too small for the load (so requests miss), deciding every 5 s."""

    name = "fixed"

    def __init__(self, probe: float | None) -> None:
        if probe:
            self.slo_probe_s = probe
        self.seen: list[Observation] = []

    def initial_tick_s(self) -> float:
        return 5.0

    def decide(self, obs: Observation) -> Decision:
        self.seen.append(obs)
        return Decision(4, 1, 5.0)


@pytest.fixture(scope="module")
def counted(traces_dir):
    reqs = scale_rate(window(read_trace(traces_dir / "mooncake_synthetic.jsonl"), 0, 240), 2.0, seed=1)
    profile = bundled_profile()
    policy = Fixed(probe=0.1)
    result = run(reqs, policy, EngineConfig(initial_prefill=4, initial_decode=1),
                 unloaded_ttft_ms=profile.prefill.ttft_ms_at)
    return policy, result, profile


def test_counts_agree_with_the_per_request_results(counted):
    policy, result, profile = counted
    slos = [o.traffic.slo for o in policy.seen]
    assert all(s is not None for s in slos)
    done = [r for r in result.per_request if r.get("ttft_ms") is not None]
    last = policy.seen[-1].now_s * 1000.0
    # requests whose first token came before the last decision are the ones the counts can hold
    first_token = [r for r in done if r["arrival_time_ms"] + r["ttft_ms"] <= last]
    missed = [r for r in first_token if r["ttft_ms"] > 500.0]
    assert len(missed) > 50  # the fleet is small enough for the check to mean something
    measured = sum(s.measured for s in slos)
    assert abs(measured - len(first_token)) <= 0.01 * len(first_token) + 2
    assert sum(s.ttft_missed for s in slos) == pytest.approx(len(missed), rel=0.1)
    arrived = [r for r in result.per_request if r["arrival_time_ms"] <= last]
    unreachable = [r for r in arrived if profile.prefill.ttft_ms_at(r["input_length"]) > 500.0]
    assert len(unreachable) > 0
    assert sum(s.unreachable for s in slos) == len(unreachable)  # from each prompt on arrival


def test_decisions_keep_their_cadence_and_traffic_windows(counted):
    policy, result, _ = counted
    times = [o.now_s for o in policy.seen]
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [5.0] * (len(times) - 1)
    # the traffic of a decision window sums the probe ticks in it: all arrivals are seen once
    assert sum(o.traffic.num_requests for o in policy.seen) == sum(
        1 for r in result.per_request if r["arrival_time_ms"] <= times[-1] * 1000.0)
    assert all(o.traffic.duration_s == pytest.approx(5.0) for o in policy.seen[1:])


def test_the_traffic_a_decision_sees_is_the_same_with_and_without_counting(traces_dir):
    """Counting ticks the engine between decisions; the window a decision reads (request count,
    mean prompt and output lengths, mean TTFT and ITL) must be the engine's own window."""
    reqs = scale_rate(window(read_trace(traces_dir / "mooncake_synthetic.jsonl"), 0, 120), 2.0, seed=1)
    plain, probed = Fixed(probe=None), Fixed(probe=0.1)
    for policy in (plain, probed):
        run(reqs, policy, EngineConfig(initial_prefill=4, initial_decode=1))
    assert len(plain.seen) == len(probed.seen) > 10
    for a, b in zip(plain.seen, probed.seen):
        ta, tb = a.traffic, b.traffic
        assert (a.now_s, ta.num_requests) == (b.now_s, tb.num_requests)
        for key in ("duration_s", "avg_isl", "avg_osl", "avg_ttft_ms", "avg_itl_ms"):
            va, vb = getattr(ta, key), getattr(tb, key)
            assert (va is None) == (vb is None) and (va is None or vb == pytest.approx(va, rel=1e-9)), (key, a.now_s)
        # worker counts are the same; the engine's per-pass snapshots (requests in the last forward
        # pass) follow the tick cadence, so those may differ
        for pa, pb in ((a.prefill, b.prefill), (a.decode, b.decode)):
            assert (pa.active, pa.starting, pa.draining) == (pb.active, pb.starting, pb.draining)


def test_policies_that_do_not_ask_get_no_counts(traces_dir):
    reqs = window(read_trace(traces_dir / "mooncake_synthetic.jsonl"), 0, 30)
    policy = Fixed(probe=None)
    run(reqs, policy, EngineConfig(initial_prefill=4, initial_decode=1))
    assert policy.seen and all(o.traffic.slo is None for o in policy.seen)
