"""Capacity awareness (scaler.service.capacity), pure: which pods are stuck unschedulable, when a
deployment is as ready as the cluster lets it be, and that a pool with stuck pods is not raised
(lowering it stays allowed); then the planning loop on it, without a cluster: the reasons, the
Events at start and end, the gauge."""

from __future__ import annotations

import datetime as dt

import pytest

from scaler.control.api import ControlService
from scaler.control.audit import Audit
from scaler.control.state import ControlState, Override, SLATargets
from scaler.policy import Decision, Diagnostics, Observation, PoolObservation, TrafficWindow
from scaler.service.capacity import (PodState, Unschedulable, condition_message, hold_raises,
                                     ready_but_for_capacity, unschedulable)
from scaler.service.loop import PlannerLoop, PoolServices, Snapshot
from scaler.service.metrics import PlannerMetrics

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
MSG = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


def ago(s: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=s)


def pending(svc: str = "decode", age: float = 90, **kw) -> PodState:
    base = dict(service=svc, phase="Pending", scheduled="False", reason="Unschedulable", message=MSG, since=ago(age))
    return PodState(**{**base, **kw})


@pytest.mark.parametrize(("pod", "is_stuck"), [
    (pending(), True),
    (pending(age=60), True),  # exactly the threshold
    (pending(age=59), False),  # not yet: may still be placed
    (pending(phase=None), True),  # no phase reported yet
    (pending(phase="Running", scheduled="True", reason=None), False),
    (pending(scheduled="True", reason=None), False),  # placed, its container starting
    (pending(scheduled=None, reason=None, since=None), False),  # the scheduler has not looked yet
    (pending(reason="SchedulerError"), False),  # not a lack of room
    (pending(deleting=True), False),  # on its way out: frees nothing and needs nothing
    (pending(since=None), False),
])
def test_which_pods_are_stuck(pod, is_stuck):
    assert bool(unschedulable([pod], NOW, 60.0)) is is_stuck


def test_stuck_pods_are_counted_per_pool_from_the_oldest():
    pods = [pending("decode", 70, message="newer"), pending("decode", 300, message=f" {MSG} "),
            pending("decode", 10), pending("prefill", 61),
            pending("Frontend", 100, phase="Running", scheduled="True", reason=None)]
    got = unschedulable(pods, NOW, 60.0)
    assert got == {"decode": Unschedulable(2, ago(300), MSG), "prefill": Unschedulable(1, ago(61), MSG)}
    assert got["decode"].describe() == f"2 pods unschedulable since 2026-12-01T11:55:00Z: {MSG}"
    assert condition_message(got) == (f"decode: 2 pods unschedulable since 2026-12-01T11:55:00Z: {MSG}; "
                                      f"prefill: 1 pod unschedulable since 2026-12-01T11:58:59Z: {MSG}")


STUCK = {"decode": Unschedulable(1, ago(90), MSG)}


@pytest.mark.parametrize(("targets", "current", "stuck", "want", "note"), [
    # a raise of a stuck pool is taken back; the reason says what was wanted and why not
    ({"prefill": 2, "decode": 5}, {"prefill": 1, "decode": 3}, STUCK, {"prefill": 2, "decode": 3},
     "InsufficientCapacity: decode kept at 3 (wanted 5): 1 pod unschedulable since"),
    # lowering it is allowed (it frees what the scheduler lacks)
    ({"prefill": 1, "decode": 2}, {"prefill": 1, "decode": 3}, STUCK, {"prefill": 1, "decode": 2},
     "InsufficientCapacity: decode not raised while 1 pod unschedulable since"),
    ({"prefill": 1, "decode": 3}, {"prefill": 1, "decode": 3}, STUCK, {"prefill": 1, "decode": 3},
     "InsufficientCapacity: decode not raised while"),
    # another pool is not held back by it
    ({"prefill": 4, "decode": 3}, {"prefill": 1, "decode": 3}, STUCK, {"prefill": 4, "decode": 3},
     "InsufficientCapacity: decode not raised while"),
    # nothing stuck: nothing changes, nothing said
    ({"prefill": 4, "decode": 9}, {"prefill": 1, "decode": 3}, {}, {"prefill": 4, "decode": 9}, None),
    # a stuck pod of a service that is not planned changes nothing
    ({"prefill": 4, "decode": 9}, {"prefill": 1, "decode": 3}, {"Frontend": STUCK["decode"]},
     {"prefill": 4, "decode": 9}, None),
])
def test_a_pool_with_stuck_pods_is_not_raised(targets, current, stuck, want, note):
    got, notes = hold_raises(targets, current, stuck)
    assert got == want
    if note is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(note) and MSG in notes[0], notes


@pytest.mark.parametrize(("desired", "ready", "stuck", "ok"), [
    # every missing replica is a stuck pod: as ready as the cluster allows
    ({"Frontend": 1, "prefill": 1, "decode": 3}, {"Frontend": 1, "prefill": 1, "decode": 2}, STUCK, True),
    # a replica neither Ready nor stuck (still starting): not ready
    ({"Frontend": 1, "prefill": 2, "decode": 3}, {"Frontend": 1, "prefill": 1, "decode": 2}, STUCK, False),
    ({"Frontend": 1, "prefill": 1, "decode": 4}, {"Frontend": 1, "prefill": 1, "decode": 2}, STUCK, False),
    # nothing stuck: readiness is the deployment's own
    ({"Frontend": 1, "prefill": 1, "decode": 3}, {"Frontend": 1, "prefill": 1, "decode": 3}, {}, False),
])
def test_ready_but_for_capacity(desired, ready, stuck, ok):
    assert ready_but_for_capacity(desired, ready, stuck) is ok


# -- the planning loop with pools short of capacity (a world that records writes) --------------


class Wants:
    name = "wants"

    def __init__(self, prefill: int, decode: int) -> None:
        self.prefill, self.decode = prefill, decode

    def initial_tick_s(self) -> float:
        return 1.0

    def decide(self, obs: Observation) -> Decision:
        return Decision(self.prefill, self.decode, reason="wanted", details=Diagnostics())


class World:
    def __init__(self, current: dict[str, int]) -> None:
        self.current, self.stuck, self.writes = dict(current), {}, []

    def observe(self) -> Snapshot:
        obs = Observation(0.0, TrafficWindow(), PoolObservation(active=self.current["prefill"]),
                          PoolObservation(active=self.current["decode"]))
        return Snapshot(obs, True, dict(self.current), unschedulable=dict(self.stuck))

    def scale(self, service: str, replicas: int) -> None:
        self.writes.append((service, replicas))
        self.current[service] = replicas


class Events(Audit):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, bool]] = []

    def record(self, user: str, action: str, detail: str, ok: bool = True) -> None:
        self.seen.append((action, detail, ok))


def _loop(world: World, policy: Wants, events: Events, **state) -> PlannerLoop:
    control = ControlService(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50), **state), None, events,
                             status=dict)
    return PlannerLoop(policy, world, world, control, PoolServices("prefill", "decode"))


def test_the_loop_does_not_raise_a_pool_short_of_capacity_and_says_so_once():
    world, policy, events, metrics = World({"prefill": 1, "decode": 3}), Wants(2, 5), Events(), PlannerMetrics()
    world.stuck = dict(STUCK)
    loop = _loop(world, policy, events)
    res = loop.tick()
    metrics.record(res)
    # prefill is raised; decode is not, and the reasons say how many pods, since when, and why
    assert world.writes == [("prefill", 2)] and res.record.targets == {"prefill": 2, "decode": 3}
    assert "InsufficientCapacity: decode kept at 3 (wanted 5): 1 pod unschedulable since" in res.record.reason
    assert MSG in res.record.reason and res.unschedulable == STUCK
    assert metrics.unschedulable.labels("decode")._value.get() == 1
    assert metrics.unschedulable.labels("prefill")._value.get() == 0
    assert [(a, ok) for a, _, ok in events.seen] == [("InsufficientCapacity", False)]
    assert "decode not raised above 3 replicas: 1 pod unschedulable" in events.seen[0][1]

    # still short: no second Event; a pin above does not place pods either
    loop.control.state.overrides["decode"] = Override(replicas=6)
    res = loop.tick()
    assert world.current["decode"] == 3 and len(events.seen) == 1
    # lowering is allowed while short (it frees what the scheduler lacks)
    loop.control.state.overrides.clear()
    policy.decode = 2
    loop.tick()
    assert world.current["decode"] == 2

    # placed again: one Event, the gauge back to 0, and the pool is raised again
    world.stuck = {}
    policy.decode = 5
    res = loop.tick()
    metrics.record(res)
    assert world.current["decode"] == 5 and "InsufficientCapacity" not in res.record.reason
    assert [a for a, _, _ in events.seen] == ["InsufficientCapacity", "CapacityAvailable"]
    assert metrics.unschedulable.labels("decode")._value.get() == 0
