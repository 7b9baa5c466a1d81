"""The observe -> decide contract shared by the live planner, the baselines and replay.

Everything here is plain data: a policy never touches Kubernetes, Prometheus or the replay
engine. Connectors turn the outside world into an `Observation` and carry a `Decision` back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PoolObservation:
    """One worker pool (prefill or decode) at one instant."""

    active: int = 0
    starting: int = 0
    draining: int = 0
    running_requests: int = 0
    queued_requests: int = 0
    # prefill: prompt tokens in flight / waiting; decode: KV tokens held / waiting
    active_tokens: int = 0
    queued_tokens: int = 0
    # fraction of the pool's KV capacity in use, when the source knows the capacity
    kv_usage: float | None = None

    @property
    def non_draining(self) -> int:
        return self.active + self.starting


@dataclass(frozen=True)
class SLOCounts:
    """How many requests met the SLA in a window: the input of the planner's error-budget loop.

    Counted by the connector against the current targets. Replay counts from the engine's
    per-interval results at a fine grain (see scaler.replay.engine); live is meant to count from
    the frontend's TTFT, ITL and ISL histograms (scaler.planner.attainment reads them) and leaves
    this None until it does: the planner then corrects from the mean latency instead."""

    measured: int = 0       # requests whose first token came in the window
    ttft_missed: int = 0    # of those, over the TTFT target
    itl_missed: int = 0     # over the ITL target
    unreachable: int = 0    # arrivals whose prompt alone takes longer than the TTFT target on an idle worker


@dataclass(frozen=True)
class TrafficWindow:
    """What the frontend saw since the previous observation. Averages are None when idle."""

    duration_s: float = 0.0
    num_requests: int = 0
    avg_isl: float | None = None
    avg_osl: float | None = None
    avg_ttft_ms: float | None = None
    avg_itl_ms: float | None = None
    slo: SLOCounts | None = None

    @property
    def request_rate(self) -> float:
        return self.num_requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class Observation:
    now_s: float
    traffic: TrafficWindow
    prefill: PoolObservation
    decode: PoolObservation
    gpus_per_prefill_worker: int = 1
    gpus_per_decode_worker: int = 1


class Outcome(str, Enum):
    """What became of one decision, as recorded and exported (`dynamo_planner_decisions`)."""

    PLANNED = "planned"  # the policy decided on observed data
    HELD_MISSING_DATA = "held_missing_data"  # an input was missing: at least one pool kept its replicas


@dataclass(frozen=True)
class Diagnostics:
    """What a decision was based on, for people and dashboards; None where the policy does not
    compute it (the baselines record nothing). Numbers in the units of their names."""

    # forecast
    forecast_rate: float | None = None       # requests/s provisioned for, at the chosen quantile
    rate: float | None = None                # requests/s observed in the window
    horizon_s: float | None = None           # start-up estimate + one interval: when new workers would be ready
    # need, fractional workers before rounding and constraints
    prefill_need: float | None = None
    decode_need: float | None = None
    # learned latency headroom (1 = the profile as measured)
    prefill_correction: float | None = None
    decode_correction: float | None = None
    startup_estimate_s: float | None = None
    # burst headroom: what it adds over the forecast alone, and the load it was sized for
    burst_window_s: float | None = None
    burst_rate: float | None = None
    burst_prefill_tokens_s: float | None = None
    burst_prefill_workers: float | None = None
    burst_decode_workers: float | None = None
    # error-budget burn rate, once enough requests were measured
    prefill_burn: float | None = None
    decode_burn: float | None = None
    # fleet coordination (replay's shared GPU budget across deployments)
    fleet_wanted_gpus: float | None = None
    fleet_target_gpus: float | None = None
    # steady floor (floor=steady): the prefill fleet for the recent load, what the load of the last
    # start-up needs on its own, and whether the fleet was held at the floor (1) or followed the need (0)
    floor_prefill_workers: float | None = None
    floor_sustained_workers: float | None = None
    floor_held: float | None = None
    # online profile fit (no profile given): informative windows taken in, and whether the fit is
    # trusted (1: sizing from it) or not yet (0: the load path alone)
    fit_windows: float | None = None
    fit_trusted: float | None = None
    # the GPU budget cut the plan (a flag, not a number: left out of as_dict)
    budget_limited: bool = False

    def as_dict(self) -> dict[str, float]:
        """The numbers that were recorded, by name: the JSON shape of `details` and `forecast` in
        the REST answers and the policy's status (unchanged from when they were a plain dict)."""
        return {f.name: v for f in fields(self)
                if f.name not in _FLAGS and (v := getattr(self, f.name)) is not None}


_FLAGS = frozenset({"budget_limited"})


@dataclass(frozen=True)
class Decision:
    """Absolute replica targets; None keeps the pool as it is."""

    target_prefill: int | None = None
    target_decode: int | None = None
    next_tick_s: float | None = None
    reason: str = ""
    details: Diagnostics = field(default_factory=Diagnostics)


@runtime_checkable
class Policy(Protocol):
    name: str

    def initial_tick_s(self) -> float: ...

    def decide(self, obs: Observation) -> Decision: ...
