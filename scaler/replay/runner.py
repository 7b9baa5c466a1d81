"""Run named policies on one trace setting and score them side by side."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from scaler.policy import Policy
from scaler.profile import PerformanceProfile
from scaler.replay import policies
from scaler.replay.baselines import Static
from scaler.replay.engine import DEFAULT_ROUTER_MODE, EngineConfig, ReplayRun, TimelinePoint, run
from scaler.replay.scoring import feasible_keys, miss_classes, score
from dynamo_scaling.traces import Request

log = logging.getLogger(__name__)


@dataclass
class Setting:
    trace_name: str
    requests: list[Request]
    profile: PerformanceProfile
    startup_s: float = 60.0
    ttft_ms: float = 500.0
    itl_ms: float = 50.0
    gpu_budget: int | None = None
    seed: int = 0
    warmup_s: float = 0.0  # played but not scored (see scaler.replay.scoring)
    attainment_target: float = 0.99  # what the predictive planner aims for
    router_mode: str = DEFAULT_ROUTER_MODE  # the engine's routing (scaler.replay.engine.EngineConfig)

    def context(self) -> policies.RunContext:
        return policies.RunContext(self.requests, self.profile, self.startup_s, self.ttft_ms, self.itl_ms,
                                   self.gpu_budget, self.seed, self.attainment_target, self.warmup_s)

    def engine(self, initial: tuple[int, int] = (1, 1)) -> EngineConfig:
        return EngineConfig(startup_s=self.startup_s, ttft_ms=self.ttft_ms, itl_ms=self.itl_ms,
                            initial_prefill=initial[0], initial_decode=initial[1], router_mode=self.router_mode)


def initial_fleet(setting: Setting, policy: Policy) -> tuple[int, int]:
    """Every run starts with the fleet the first minute needs (a deployment already sized for
    the load when the trace begins); fixed fleets start at their size."""
    if isinstance(policy, Static):
        return policy.prefill, policy.decode
    first = setting.context().needs(60.0)[:1]
    return (max(1, first[0].prefill), max(1, first[0].decode)) if first else (1, 1)


def run_policy(setting: Setting, name: str,
               on_point: Callable[[TimelinePoint], None] | None = None) -> ReplayRun:
    policy = policies.make(name, setting.context())
    drive = getattr(policy, "run_replay", None)
    if drive is not None:  # a planner that runs Dynamo's replay loop itself (Dynamo's own planner)
        return drive(setting.requests, setting.engine(initial_fleet(setting, policy)), on_point)
    return run(setting.requests, policy, setting.engine(initial_fleet(setting, policy)), on_point,
               setting.profile.prefill.ttft_ms_at)


def compare(setting: Setting, names: list[str], progress: Callable[[str], None] | None = None,
            keep: Collection[str] | None = None) -> tuple[list[dict], dict[str, ReplayRun]]:
    """Score every policy in `names` (the ceiling run always happens first: it defines feasibility).

    Returns the rows and the runs named in `keep` (default: every run) and the ceiling's: each run
    holds every request's results, so a caller that only wants the rows lets the others go as soon
    as they are scored."""
    say = progress or (lambda m: log.info(m))
    runs: dict[str, ReplayRun] = {}
    order = ["ceiling"] + [n for n in names if n != "ceiling"]
    feasible: Counter | None = None
    rows = []
    for i, name in enumerate(order, 1):
        run_ = run_policy(setting, name)
        say(f"[{i}/{len(order)}] {setting.trace_name}: {name} done in {run_.wall_seconds:.1f} s")
        if feasible is None:
            feasible = feasible_keys(run_)
        row = score(run_, setting.trace_name, feasible, setting.warmup_s)
        row["feasible_misses"] = miss_classes(run_, feasible, setting.profile.prefill.ttft_ms_at, setting.warmup_s)
        rows.append(row)
        if keep is None or name in keep or name == "ceiling":
            runs[name] = run_
    oracle = next((r for r in rows if r["planner"] == "oracle"), None)
    for r in rows:
        if oracle and oracle["gpu_hours"] > 0:
            r["gpu_hours_vs_oracle"] = r["gpu_hours"] / oracle["gpu_hours"]
    return rows, runs
