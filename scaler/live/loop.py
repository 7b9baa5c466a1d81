"""One planning tick: observe -> decide -> bend by operator control -> write (or only advise).

The observer and the actuator are the only parts that touch the outside world; both are small
protocols so the loop itself is tested without a cluster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from scaler.control.api import ControlService
from scaler.control.state import DecisionRecord, utcnow
from scaler.policy import Decision, Observation, Policy

log = logging.getLogger(__name__)


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


class Observer(Protocol):
    def observe(self) -> Snapshot: ...


class Actuator(Protocol):
    def scale(self, service: str, replicas: int) -> None: ...


@dataclass
class TickResult:
    record: DecisionRecord
    decision: Decision | None
    written: dict[str, int]


class PlannerLoop:
    def __init__(self, policy: Policy, observer: Observer, actuator: Actuator,
                 control: ControlService, pools: PoolServices) -> None:
        self.policy, self.observer, self.actuator = policy, observer, actuator
        self.control, self.pools = control, pools
        self.last: TickResult | None = None

    def tick(self) -> TickResult:
        now = utcnow()
        snap = self.observer.observe()
        with self.control.lock:
            for svc in self.control.state.expire(now):
                log.info("override expired", extra={"service": svc})
            decision = self.policy.decide(snap.observation)
            planned = {
                self.pools.prefill: decision.target_prefill if decision.target_prefill is not None
                else snap.current.get(self.pools.prefill, 0),
                self.pools.decode: decision.target_decode if decision.target_decode is not None
                else snap.current.get(self.pools.decode, 0),
            }
            targets, notes = self.control.state.bend(planned, now)
            may_write, mode = self.control.state.should_write()
            reasons = [decision.reason or "no reason given", *notes]
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
            record = DecisionRecord(at=now, targets=targets, planned=planned, applied=bool(written),
                                    reason="; ".join(reasons), details=dict(decision.details))
            self.control.state.history.append(record)
        log.info("planner tick", extra={"targets": targets, "written": written, "mode": mode,
                                        "reason": record.reason})
        self.last = TickResult(record, decision, written)
        return self.last
