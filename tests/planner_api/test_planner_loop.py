"""The planning tick: operator control bends and gates what the policy decides."""

from __future__ import annotations

import datetime as dt

from scaler.control.api import ControlService
from scaler.control.audit import Audit
from scaler.control.state import ControlState, Override, SLATargets
from scaler.service.loop import PlannerLoop, PoolServices, Snapshot
from scaler.policy import Decision, Diagnostics, Observation, PoolObservation, TrafficWindow

POOLS = PoolServices("prefill", "decode")


class FixedPolicy:
    name = "fixed"

    def __init__(self, prefill: int | None, decode: int | None) -> None:
        self.targets = (prefill, decode)
        self.calls = 0

    def initial_tick_s(self) -> float:
        return 1.0

    def decide(self, obs: Observation) -> Decision:
        self.calls += 1
        return Decision(*self.targets, reason="fixed targets", details=Diagnostics(forecast_rate=1.0))


class World:
    """Records what the loop writes; observing returns what was written so far."""

    def __init__(self, current: dict[str, int], ready: bool = True, blocked: dict[str, str] | None = None,
                 missing: dict[str, str] | None = None) -> None:
        self.current, self.ready, self.blocked, self.writes = dict(current), ready, blocked or {}, []
        self.missing = missing or {}

    def observe(self) -> Snapshot:
        obs = Observation(0.0, TrafficWindow(), PoolObservation(active=self.current["prefill"]),
                          PoolObservation(active=self.current["decode"]))
        return Snapshot(obs, self.ready, dict(self.current), dict(self.blocked), dict(self.missing))

    def scale(self, service: str, replicas: int) -> None:
        self.writes.append((service, replicas))
        self.current[service] = replicas


def _loop(world: World, policy=None, **state) -> PlannerLoop:
    control = ControlService(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50), **state), None, Audit(),
                             status=dict)
    return PlannerLoop(policy or FixedPolicy(3, 2), world, world, control, POOLS)


def test_writes_only_changes():
    world = World({"prefill": 1, "decode": 2})
    res = _loop(world).tick()
    assert world.writes == [("prefill", 3)]
    assert res.record.applied and res.record.targets == {"prefill": 3, "decode": 2}


def test_none_keeps_current():
    world = World({"prefill": 1, "decode": 2})
    res = _loop(world, FixedPolicy(None, 4)).tick()
    assert world.writes == [("decode", 4)] and res.record.planned["prefill"] == 1


def test_paused_and_advisory_compute_but_do_not_write():
    for flag in ("paused", "advisory"):
        world = World({"prefill": 1, "decode": 1})
        res = _loop(world, **{flag: True}).tick()
        assert world.writes == [] and not res.record.applied
        assert res.record.targets == {"prefill": 3, "decode": 2} and flag in res.record.reason


def test_not_ready_deployment_is_left_alone():
    world = World({"prefill": 1, "decode": 1}, ready=False)
    res = _loop(world).tick()
    assert world.writes == [] and "not ready" in res.record.reason


def test_overrides_pin_and_bound_and_expire():
    world = World({"prefill": 1, "decode": 1})
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    loop = _loop(world, overrides={"prefill": Override(max_replicas=2), "decode": Override(replicas=5),
                                   "gone": Override(replicas=9, expires_at=past)})
    res = loop.tick()
    assert sorted(world.writes) == [("decode", 5), ("prefill", 2)]
    assert "override on prefill: 3 -> 2" in res.record.reason
    assert "gone" not in loop.control.state.overrides


def test_blocked_service_is_reported_not_written():
    world = World({"prefill": 1, "decode": 1}, blocked={"decode": "HPA llama-decode also scales it"})
    res = _loop(world).tick()
    assert world.writes == [("prefill", 3)]
    assert "decode not written: HPA llama-decode also scales it" in res.record.reason


def test_history_is_kept_newest_last():
    world = World({"prefill": 1, "decode": 1})
    loop = _loop(world)
    loop.tick()
    loop.tick()
    hist = list(loop.control.state.history)
    assert len(hist) == 2 and hist[0].applied and not hist[1].applied


def test_missing_traffic_holds_both_pools_and_planning_resumes_when_data_returns():
    why = "no frontend request series (dynamo_request_rate)"
    world = World({"prefill": 4, "decode": 3}, missing={"prefill": why, "decode": why})
    policy = FixedPolicy(1, 1)
    loop = _loop(world, policy)
    res = loop.tick()
    # nothing written, and the policy's forecast is not fed a made-up idle window
    assert world.writes == [] and policy.calls == 0
    assert res.record.outcome == "held_missing_data" and res.record.targets == {"prefill": 4, "decode": 3}
    assert f"held_missing_data: prefill kept at 4: {why}" in res.record.reason
    assert res.held == {"prefill": why, "decode": why}
    world.missing = {}
    res = loop.tick()
    assert sorted(world.writes) == [("decode", 1), ("prefill", 1)]
    assert res.record.outcome == "planned" and res.held == {}


def test_a_pool_without_data_is_held_while_the_other_is_planned():
    world = World({"prefill": 4, "decode": 3}, missing={"decode": "no series for decode"})
    res = _loop(world, FixedPolicy(1, 1)).tick()
    assert world.writes == [("prefill", 1)]
    assert res.record.outcome == "held_missing_data" and res.record.planned == {"prefill": 1, "decode": 3}
    assert "decode kept at 3: no series for decode" in res.record.reason


def test_an_override_still_applies_to_a_held_pool():
    # a pin is the operator's decision, not an inference from data
    world = World({"prefill": 4, "decode": 3}, missing={"decode": "no series for decode"})
    res = _loop(world, FixedPolicy(1, 1), overrides={"decode": Override(replicas=5)}).tick()
    assert sorted(world.writes) == [("decode", 5), ("prefill", 1)] and res.record.outcome == "held_missing_data"
