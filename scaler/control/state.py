"""What operators can change at run time, and how it bends a planner decision. Pure logic."""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scaler.policy import Outcome

MAX_REPLICAS = 10_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Override(BaseModel):
    """Pin a service's replicas, or bound them. Expires at `expires_at` when given."""

    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS,
                                 description="pin the service at exactly this many replicas")
    min_replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS, description="lower bound")
    max_replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS, description="upper bound")
    expires_at: dt.datetime | None = Field(default=None, description="RFC 3339 time; absent = until deleted")
    reason: str = Field(default="", max_length=512)
    set_by: str = Field(default="", description="filled by the server from the caller's identity")
    set_at: dt.datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Override":
        if self.replicas is None and self.min_replicas is None and self.max_replicas is None:
            raise ValueError("set at least one of replicas, min_replicas, max_replicas")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must be <= max_replicas")
        if self.replicas is not None and (self.min_replicas is not None or self.max_replicas is not None):
            raise ValueError("replicas pins the value: do not combine it with min_replicas/max_replicas")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone, e.g. 2026-01-01T12:00:00Z")
        return self

    def active(self, now: dt.datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def apply(self, target: int) -> int:
        if self.replicas is not None:
            return self.replicas
        if self.min_replicas is not None:
            target = max(target, self.min_replicas)
        if self.max_replicas is not None:
            target = min(target, self.max_replicas)
        return target


class SLATargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(gt=0, le=600_000, description="time-to-first-token target, milliseconds")
    itl_ms: float = Field(gt=0, le=60_000, description="inter-token latency target, milliseconds")
    # left out of answers while at its default, so SLA bodies written before it existed read the same
    attainment_target: float = Field(0.99, gt=0, lt=1, exclude_if=lambda v: v == 0.99,
                                     description="share of requests that must meet both targets")


@dataclass
class DecisionRecord:
    at: dt.datetime
    targets: dict[str, int]
    planned: dict[str, int]
    applied: bool
    reason: str
    details: dict[str, float] = field(default_factory=dict)
    outcome: Outcome = Outcome.PLANNED

    def as_dict(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "targets": self.targets, "planned": self.planned,
                "applied": self.applied, "outcome": self.outcome.value, "reason": self.reason, "details": self.details}


@dataclass
class ControlState:
    """Everything an operator can set. `overrides` is keyed by DGD service name."""

    sla: SLATargets
    paused: bool = False
    advisory: bool = False
    overrides: dict[str, Override] = field(default_factory=dict)
    # generation of the DynamoGraphDeploymentRequest whose spec.sla was last taken as the SLA
    sla_request_generation: int | None = None
    history: deque[DecisionRecord] = field(default_factory=lambda: deque(maxlen=1000))

    def expire(self, now: dt.datetime) -> list[str]:
        gone = [svc for svc, o in self.overrides.items() if not o.active(now)]
        for svc in gone:
            del self.overrides[svc]
        return gone

    def bend(self, planned: dict[str, int], now: dt.datetime) -> tuple[dict[str, int], list[str]]:
        """Apply active overrides to the planner's targets; return targets and what changed them."""
        out, notes = dict(planned), []
        for svc, target in planned.items():
            o = self.overrides.get(svc)
            if o and o.active(now):
                bent = o.apply(target)
                if bent != target:
                    notes.append(f"override on {svc}: {target} -> {bent}")
                out[svc] = bent
        return out, notes

    def should_write(self) -> tuple[bool, str]:
        if self.paused:
            return False, "paused"
        if self.advisory:
            return False, "advisory"
        return True, "active"

    # persistence shape (no history: decisions are not state to restore)
    def to_persisted(self) -> dict[str, object]:
        return {
            "sla": self.sla.model_dump(),
            "paused": self.paused,
            "advisory": self.advisory,
            "overrides": {k: v.model_dump(mode="json") for k, v in self.overrides.items()},
            "sla_request_generation": self.sla_request_generation,
        }

    @classmethod
    def from_persisted(cls, data: dict, default_sla: SLATargets) -> "ControlState":
        return cls(
            sla=SLATargets.model_validate(data["sla"]) if data.get("sla") else default_sla,
            paused=bool(data.get("paused", False)),
            advisory=bool(data.get("advisory", False)),
            overrides={k: Override.model_validate(v) for k, v in (data.get("overrides") or {}).items()},
            sla_request_generation=data.get("sla_request_generation"),
        )
