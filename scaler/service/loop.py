"""One planning tick: observe -> decide -> bend by operator control -> write (or only advise).

The observer and the actuator are the only parts that touch the outside world; both are small
protocols so the loop itself is tested without a cluster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import datetime
from collections.abc import Callable
from typing import Any, Protocol

from scaler.control.api import ControlService
from scaler.control.state import DecisionRecord, utcnow
from scaler.service.capacity import Unschedulable, hold_raises
from scaler.policy import Decision, Observation, Outcome, Policy, SLOCounts

log = logging.getLogger(__name__)

# how adapter.scale_client names Dynamo's own planner running as a component of the graph
IN_GRAPH_PLANNER = "DynamoPlanner/"


@dataclass(frozen=True)
class PoolServices:
    """Which DGD services are the prefill and decode pools."""

    prefill: str
    decode: str

    def names(self) -> list[str]:
        return [self.prefill, self.decode]


@dataclass(frozen=True)
class Snapshot:
    """What the observer saw: the policy's observation plus facts the loop needs."""

    observation: Observation
    ready: bool  # the DGD is Ready: the planner does not act on a deployment in transition
    current: dict[str, int]  # replicas in effect per service (DGDSA spec)
    blocked: dict[str, str] = field(default_factory=dict)  # service -> why the planner must not write it
    # service -> which input the decision needs is missing; such a pool keeps its replicas
    missing: dict[str, str] = field(default_factory=dict)
    # service -> its pods the scheduler cannot place; such a pool is not raised
    unschedulable: dict[str, Unschedulable] = field(default_factory=dict)
    # the window's prompt lengths as the frontend's ISL histogram counts them (upper edge in
    # tokens -> cumulative increase, +Inf the total), for a policy that models the prompt mix
    prompt_buckets: dict[float, float] | None = None


class Observer(Protocol):
    def observe(self) -> Snapshot: ...


class Actuator(Protocol):
    def scale(self, service: str, replicas: int) -> None: ...


@dataclass
class TickResult:
    record: DecisionRecord
    decision: Decision | None
    written: dict[str, int]
    held: dict[str, str] = field(default_factory=dict)  # pools held for missing data, and why
    current: dict[str, int] = field(default_factory=dict)  # replicas in effect when decided
    blocked: dict[str, str] = field(default_factory=dict)  # pools another scaler owns, and why
    mode: str = "active"  # why replicas were (not) written: active, paused, advisory, ...
    unschedulable: dict[str, Unschedulable] = field(default_factory=dict)  # pools short of capacity
    slo: SLOCounts | None = None  # the window's measured SLA counts, None where not measured


@dataclass
class Plan:
    """One tick's decision before it is written (PlannerLoop.plan -> write)."""

    now: datetime
    snap: Snapshot
    held: dict[str, str]
    keep: dict[str, int]  # replicas in effect per pool
    decision: Decision | None
    planned: dict[str, int]  # the policy's targets, before overrides
    targets: dict[str, int]  # what would be written
    reasons: list[str]
    may_write: bool
    mode: str
    stuck: dict[str, Unschedulable]

    def parts(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Announcement:
    """How a pool entering and leaving one state is logged and recorded as Events."""

    start_log: str
    start_reason: str
    start_message: Callable[[str, Any], str]
    end_log: str
    end_reason: str
    end_message: Callable[[str], str]


class PlannerLoop:
    def __init__(self, policy: Policy, observer: Observer, actuator: Actuator,
                 control: ControlService, pools: PoolServices) -> None:
        self.policy, self.observer, self.actuator = policy, observer, actuator
        self.control, self.pools = control, pools
        self.last: TickResult | None = None
        self.held: dict[str, str] = {}
        self.in_graph: dict[str, str] = {}  # pools Dynamo's in-graph planner scales, and the message
        self.short: dict[str, Unschedulable] = {}  # pools with unschedulable pods at the last tick
        self.dgd: str | None = None  # "<namespace>/<name>": a fleet planner's log lines must say which DGD

    def _log(self, **extra) -> dict:
        return {"dgd": self.dgd, **extra} if self.dgd else extra

    def tick(self) -> TickResult:
        return self.write(self.plan())

    def plan(self) -> Plan:
        """Observe and decide, bent by the operator's overrides; nothing is written yet (a fleet
        cuts every DGD's targets to its GPU budget between this and `write`)."""
        now = utcnow()
        snap = self.observer.observe()
        held = {svc: why for svc, why in snap.missing.items() if svc in self.pools.names()}
        with self.control.lock:
            for svc in self.control.state.expire(now):
                log.info("override expired", extra=self._log(service=svc))
            keep = {svc: snap.current.get(svc, 0) for svc in self.pools.names()}
            if len(held) == len(keep):
                # nothing to decide on: the forecast must not learn a made-up idle window either
                decision, planned, reasons = None, dict(keep), []
            else:
                # duck-typed: only a policy with a tail model takes the window's prompt mix
                feed = getattr(self.policy, "observe_prompt_histogram", None)
                if feed is not None and snap.prompt_buckets:
                    feed(snap.prompt_buckets)
                decision = self.policy.decide(snap.observation)
                planned = {
                    self.pools.prefill: decision.target_prefill if decision.target_prefill is not None
                    else keep[self.pools.prefill],
                    self.pools.decode: decision.target_decode if decision.target_decode is not None
                    else keep[self.pools.decode],
                }
                reasons = [decision.reason or "no reason given"]
            for svc, why in held.items():
                planned[svc] = keep[svc]
                reasons.append(f"{Outcome.HELD_MISSING_DATA.value}: {svc} kept at {keep[svc]}: {why}")
            targets, notes = self.control.state.bend(planned, now)
            may_write, mode = self.control.state.should_write()
            reasons += notes
            stuck = {svc: u for svc, u in snap.unschedulable.items() if svc in self.pools.names()}
            # after the overrides: a pin does not place pods the cluster has no room for either
            targets, notes = hold_raises(targets, keep, stuck)
            reasons += notes
        return Plan(now, snap, held, keep, decision, planned, targets, reasons, may_write, mode, stuck)

    def write(self, plan: Plan) -> TickResult:
        """Write a plan's targets (unless writes are off) and record the decision."""
        now, snap, held, keep, decision, planned, targets, reasons, may_write, mode, stuck = plan.parts()
        with self.control.lock:
            written: dict[str, int] = {}
            if not snap.ready:
                may_write, mode = False, "deployment not ready"
            if may_write:
                for svc, n in targets.items():
                    if svc in snap.blocked:
                        reasons.append(f"{svc} not written: {snap.blocked[svc]}")
                        continue
                    if snap.current.get(svc) != n:
                        self.actuator.scale(svc, n)
                        written[svc] = n
            else:
                reasons.append(f"not written: {mode}")
            outcome = Outcome.HELD_MISSING_DATA if held else Outcome.PLANNED
            record = DecisionRecord(at=now, targets=targets, planned=planned, applied=bool(written),
                                    reason="; ".join(reasons), details=decision.details.as_dict() if decision else {},
                                    outcome=outcome)
            self.control.state.history.append(record)
        log.info("planner tick", extra=self._log(targets=targets, written=written, mode=mode,
                                                 outcome=outcome.value, reason=record.reason))
        self._announce(held, keep)
        self._announce_in_graph(snap.blocked)
        self._announce_capacity(stuck, keep)
        self.last = TickResult(record, decision, written, held, current=dict(keep),
                               blocked={s: w for s, w in snap.blocked.items() if s in self.pools.names()}, mode=mode,
                               unschedulable=stuck, slo=snap.observation.traffic.slo)
        return self.last

    def _announce_capacity(self, stuck: dict[str, Unschedulable], keep: dict[str, int]) -> None:
        """Pools with pods the scheduler cannot place (Warning), and when they have none any more."""
        self._announce_changes("short", stuck, Announcement(
            "pool short of capacity", "InsufficientCapacity",
            lambda svc, s: f"{svc} not raised above {keep[svc]} replicas: {s.describe()}",
            "pool schedulable again", "CapacityAvailable",
            lambda svc: f"{svc}: no pod is unschedulable any more, it may be raised again"))

    def _announce(self, held: dict[str, str], keep: dict[str, int]) -> None:
        """Pools held for missing data, and when they are planned again."""
        self._announce_changes("held", held, Announcement(
            "pool held: missing data", "HeldMissingData", lambda svc, why: f"{svc} held at {keep[svc]} replicas: {why}",
            "pool planned again: data is back", "ResumedWithData",
            lambda svc: f"{svc}: the inputs are back, planning resumes"))

    def _announce_in_graph(self, blocked: dict[str, str]) -> None:
        """Pools Dynamo's own planner, deployed in the graph, is found scaling (so this planner
        leaves them alone), and when it is gone."""
        now = {svc: why for svc, why in blocked.items() if IN_GRAPH_PLANNER in why}
        self._announce_changes("in_graph", now, Announcement(
            "pool left to the in-graph Dynamo planner", "InGraphPlanner",
            lambda svc, why: f"{svc} not scaled by this planner: {why} (Dynamo's planner is a component of this "
                             "graph and scales its adapters; remove it or this planner's claim)",
            "in-graph Dynamo planner gone", "InGraphPlannerGone",
            lambda svc: f"{svc}: no in-graph Dynamo planner any more, planning resumes"))

    def _announce_changes(self, attr: str, now: dict, a: Announcement) -> None:
        """An Event when a pool enters a state and one when it leaves it, not one per tick; `attr`
        keeps the pools in that state at the last tick."""
        names = self.pools.names()
        now = {svc: v for svc, v in now.items() if svc in names}
        before = getattr(self, attr)
        setattr(self, attr, dict(now))
        for svc in names:
            try:
                if svc in now and svc not in before:
                    why = now[svc].describe() if hasattr(now[svc], "describe") else now[svc]
                    log.warning(a.start_log, extra=self._log(service=svc, why=why))
                    self.control.audit.record("planner", a.start_reason, a.start_message(svc, now[svc]), ok=False)
                elif svc in before and svc not in now:
                    log.info(a.end_log, extra=self._log(service=svc))
                    self.control.audit.record("planner", a.end_reason, a.end_message(svc))
            except Exception:  # an Event is a report; it must never fail the decision
                log.warning("could not record the event", exc_info=True, extra=self._log(service=svc))
