"""A steady floor: the fixed fleet learned online, held while load only clumps. Pure.

On low, steady load with clumps of requests a few seconds long, a fleet sized once for the clumps
meets the target, while a planner that follows each clump pays for every scale-up during start-up
(the workers arrive after the clump) and then holds them through the scale-down hold. Scaling
pays only for load that lasts longer than a worker takes to start.

So, per decision (`planner.floor: steady`):

- the floor is the prefill fleet that meets `attainment_target` over the recent load as a
  distribution over requests (each decision's rate weighted by the requests it carried and by
  age, half-life `floor_half_life_s`, over `floor_history_s`): what a fixed fleet sized on the
  last hour would have been (the same tail model, scaler/planner/tail.py, as bursts=mix, only
  over a longer memory);
- the sustained need is the prefill fleet for the mean load of the last start-up time on its own:
  a clump shorter than that hardly moves it, a shift of load that outlasts it does;
- while the sustained need stays within the floor, the fleet is the floor, up and down: clumps
  are not chased and the planner's own need (its shorter memory, the forecast, the queues) does
  not move it;
- once the sustained need exceeds the floor, load has shifted for longer than the start-up and
  the planner's need is followed (never below the floor) until the floor, which takes in the new
  load, catches up. Downward the floor falls as the old load ages.

Workers that start within `floor_min_startup_s` (a decision or two) catch a clump while it lasts:
scaling pays there, and the floor is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaler.planner.bursts import BurstHeadroom


@dataclass(frozen=True)
class FloorDecision:
    """What the floor did to the prefill need: the workers to plan for, and why."""

    workers: float     # the prefill need after the floor
    floor: float       # the floor: the fleet over the recent load distribution
    sustained: float   # workers the mean load of the release span needs on its own
    held: bool         # True: the fleet is held at the floor (the planner's need set aside)


def whole(workers: float, tol: float = 2e-3) -> float:
    """The tail model's attainment steps at whole workers, so its bisection (scaler/planner/tail.py,
    relative tolerance 1e-3) ends just above a whole number, which rounding up would turn into one
    worker more: snap such answers to the whole number."""
    n = round(workers)
    return float(n) if n > 0 and abs(workers - n) <= tol * n else workers


def apply_floor(need: float, floor: float, sustained: float) -> FloorDecision:
    """The planner's prefill `need`, the `floor`, and the `sustained` need of the release span ->
    the need to plan for: the floor while the sustained need stays within it, else the planner's
    need, never below the floor."""
    if sustained > floor:
        return FloorDecision(max(need, floor), floor, sustained, False)
    return FloorDecision(floor, floor, sustained, True)


@dataclass
class SteadyFloor:
    """The recent load (requests/s per decision) the floor and the sustained need are drawn from."""

    half_life_s: float = 1800.0
    history_s: float = 3600.0
    min_startup_s: float = 10.0
    loads: BurstHeadroom = field(init=False)

    def __post_init__(self) -> None:
        if self.history_s <= 0:
            raise ValueError("history_s must be > 0")
        if self.min_startup_s < 0:
            raise ValueError("min_startup_s must be >= 0")
        self.loads = BurstHeadroom(half_life_s=self.half_life_s, history_s=self.history_s)

    def update(self, rate: float, dt: float) -> None:
        self.loads.update(rate, dt)

    def active(self, startup_s: float) -> bool:
        """Whether workers start too slowly to catch a clump (then the floor applies)."""
        return startup_s >= self.min_startup_s and startup_s > 0

    def distribution(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(load, share of requests) over the history; None before any load."""
        return self.loads.distribution()

    def sustained_rate(self, startup_s: float) -> float:
        """Mean load of the last start-up time: what a worker asked for now would still find."""
        return self.loads.mean(startup_s)
