"""The oracle's need comes from the planner's tail model (scaler.replay.needs on
scaler.planner.tail), and replay hands a policy every prompt length as it arrives, as the live
frontend's ISL histogram would."""

from __future__ import annotations

from scaler.policy import Decision
from scaler.profile import bundled_profile
from scaler.replay.engine import EngineConfig, run
from scaler.replay.needs import window_needs
from dynamo_scaling.traces import Request

PROFILE = bundled_profile()


def _even(n: int, isl, span_s: float = 30.0) -> list[Request]:
    return [Request(i * span_s * 1000.0 / n, isl(i), 20) for i in range(n)]


def test_long_prompts_among_short_ones_need_more_prefill_than_their_mean():
    uniform = _even(600, lambda i: 2900)
    spread = _even(600, lambda i: 20000 if i % 10 == 0 else 1000)  # mean 2900 too
    assert window_needs(spread, PROFILE, 500.0, 50.0)[0].prefill > window_needs(uniform, PROFILE, 500.0, 50.0)[0].prefill


def test_requests_clumped_within_a_window_need_more_than_the_same_spread_evenly():
    even = _even(600, lambda i: 2000)
    clumped = [Request(i * 2000.0 / 600, 2000, 20) for i in range(600)]  # all in the first 2 s
    assert window_needs(clumped, PROFILE, 500.0, 50.0)[0].prefill > 2 * window_needs(even, PROFILE, 500.0, 50.0)[0].prefill


def test_a_higher_attainment_asks_for_more():
    reqs = _even(600, lambda i: 20000 if i % 10 == 0 else 1000)
    low = window_needs(reqs, PROFILE, 500.0, 50.0, attainment=0.9)[0].prefill
    high = window_needs(reqs, PROFILE, 500.0, 50.0, attainment=0.999)[0].prefill
    assert high > low


class Listener:
    """Keeps the fleet; records the prompt lengths the replay hands over before each decision."""

    name = "listener"

    def __init__(self) -> None:
        self.seen: list[list[int]] = []
        self.reuse: list[tuple[int, float | None]] = []

    def initial_tick_s(self) -> float:
        return 5.0

    def observe_prompts(self, lengths, reuse=None) -> None:
        self.seen.append(list(lengths))
        self.reuse.extend(reuse)

    def decide(self, obs) -> Decision:
        return Decision(None, None, 5.0, "keep")


def test_replay_hands_each_prompt_length_to_the_policy_once_in_arrival_order():
    reqs = [Request(i * 100.0, 1000 + i, 10) for i in range(200)]  # 20 s, lengths all different
    policy = Listener()
    run(reqs, policy, EngineConfig(startup_s=0.0))
    received = [x for batch in policy.seen for x in batch]
    assert received == [r.input_length for r in reqs][:len(received)]
    assert len(received) >= 150  # all that arrived before the last decision
    assert max(len(b) for b in policy.seen) <= 60  # 5 s at 10 req/s, not the whole trace at once


def test_replay_hands_over_what_an_earlier_request_had_of_each_prompt_and_when():
    # every other request repeats the first one's 3 blocks and adds one of its own
    reqs = [Request(i * 100.0, 2000, 10, (0, 1, 2, 100 + i) if i % 2 else tuple(range(200 + 4 * i, 204 + 4 * i)))
            for i in range(100)]
    reqs[0] = Request(0.0, 1536, 10, (0, 1, 2))
    policy = Listener()
    run(reqs, policy, EngineConfig(startup_s=0.0))
    n = len(policy.reuse)
    assert n >= 40  # all that arrived before the last decision
    # the first repeat is 0.1 s after the first request, each later one 0.2 s after the one before
    assert policy.reuse == [(1536, 0.1 if i == 1 else 0.2) if i % 2 else (0, None) for i in range(n)]
