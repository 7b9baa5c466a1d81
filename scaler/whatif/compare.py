"""The proposed change, the settings it gives, and the replay of both settings on one trace.

A proposal has the shapes of the planner API's bodies: `sla` as `PUT /v1/sla` takes it and
`overrides` as `PUT /v1/overrides/{svc}` takes them, keyed by the pool's DGD service. In the
replay an override bounds the planner (a pin is min = max), as the planner's own min/max do."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dynamo_scaling.traces import Request
from scaler.control.state import Override, SLATargets
from scaler.planner.config import PlannerConfig
from scaler.profile import PerformanceProfile

MAX_WINDOW_S = 6 * 3600.0


class ProposalError(ValueError):
    """A proposal that cannot be replayed; `field` is its dotted path in the request body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sla: SLATargets | None = Field(None, description="as PUT /v1/sla: ttft_ms, itl_ms, attainment_target")
    overrides: dict[str, Override] = Field(default_factory=dict, description=(
        "as PUT /v1/overrides/{svc}, keyed by the pool's DGD service: replicas (a pin), min_replicas, max_replicas"))
    window_s: float = Field(3600.0, ge=60, le=MAX_WINDOW_S, description="how much recent traffic to replay")
    step_s: float = Field(60.0, ge=5, le=600, description="resolution of the rebuilt request rate")
    seed: int = Field(0, ge=0, description="seed of the rebuilt trace (same seed, same trace)")

    @classmethod
    def parse(cls, data: object) -> "Proposal":
        """Validated, or ProposalError naming the first offending field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            raise ProposalError(where, err["msg"]) from None


@dataclass(frozen=True)
class Pools:
    """DGD service keys of the two pools."""

    prefill: str = "prefill"
    decode: str = "decode"

    def role(self, name: str) -> str | None:
        if name in (self.prefill, "prefill"):
            return "prefill"
        if name in (self.decode, "decode"):
            return "decode"
        return None


def settings(base: PlannerConfig, pools: Pools, sla: SLATargets | None = None,
             overrides: dict[str, Override] | None = None, where: str = "overrides") -> PlannerConfig:
    """`base` with the SLA and the overrides applied. An override on a pool replaces its bounds:
    a pin sets both, a min or max one side (the other side moves only as far as it must)."""
    update: dict = {}
    if sla is not None:
        update.update(ttft_ms=sla.ttft_ms, itl_ms=sla.itl_ms, attainment_target=sla.attainment_target)
    lo = {"prefill": base.min_prefill, "decode": base.min_decode}
    hi = {"prefill": base.max_prefill, "decode": base.max_decode}
    for svc, o in (overrides or {}).items():
        role = pools.role(svc)
        if role is None:
            raise ProposalError(f"{where}.{svc}", f"not a pool of this planner; known: {pools.prefill}, {pools.decode}")
        if o.replicas is not None:
            lo[role] = hi[role] = o.replicas
        if o.min_replicas is not None:
            lo[role], hi[role] = o.min_replicas, max(hi[role], o.min_replicas)
        if o.max_replicas is not None:
            hi[role], lo[role] = o.max_replicas, min(lo[role], o.max_replicas)
        if hi[role] < 1:
            raise ProposalError(f"{where}.{svc}", "the replay needs at least one worker per pool")
    update.update(min_prefill=lo["prefill"], max_prefill=hi["prefill"], min_decode=lo["decode"],
                  max_decode=hi["decode"])
    try:  # validated as the planner validates its config (e.g. the GPU budget against the minimums)
        return PlannerConfig.model_validate({**base.model_dump(), **update})
    except ValidationError as exc:
        raise ProposalError(where if overrides else "sla", exc.errors()[0]["msg"]) from None


SHOWN = ("sla_attainment", "feasible_attainment", "gpu_hours", "max_gpus", "scale_events", "ttft_p50_ms",
         "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "requests", "wall_seconds")


def _described(cfg: PlannerConfig, pools: Pools) -> dict:
    return {"ttft_ms": cfg.ttft_ms, "itl_ms": cfg.itl_ms, "attainment_target": cfg.attainment_target,
            "pools": {pools.prefill: {"min": cfg.min_prefill, "max": cfg.max_prefill},
                      pools.decode: {"min": cfg.min_decode, "max": cfg.max_decode}},
            "gpu_budget": cfg.gpu_budget, "startup_s": cfg.startup_s}


class Replayer:
    """Replays one trace under settings, as `dynamo-scaling replay --planner predictive` does:
    the same engine configuration, first fleet and scoring (attainment among feasible requests
    is judged against a ceiling run, one per distinct SLA)."""

    def __init__(self, requests: list[Request], profile: PerformanceProfile) -> None:
        self.requests, self.profile = requests, profile
        self._feasible: dict[tuple, object] = {}

    def _setting(self, cfg: PlannerConfig):
        from scaler.replay.runner import Setting

        return Setting("what-if", self.requests, self.profile, cfg.startup_s, cfg.ttft_ms, cfg.itl_ms,
                       cfg.gpu_budget, 0, 0.0, attainment_target=cfg.attainment_target)

    def feasible(self, cfg: PlannerConfig):
        from scaler.replay.runner import run_policy
        from scaler.replay.scoring import feasible_keys

        key = (cfg.startup_s, cfg.ttft_ms, cfg.itl_ms, cfg.gpu_budget, cfg.attainment_target)
        if key not in self._feasible:
            self._feasible[key] = feasible_keys(run_policy(self._setting(cfg), "ceiling"))
        return self._feasible[key]

    def run(self, cfg: PlannerConfig) -> dict:
        from scaler.planner.predictive import PredictivePlanner
        from scaler.replay.engine import run
        from scaler.replay.runner import initial_fleet
        from scaler.replay.scoring import score

        setting = self._setting(cfg)
        policy = PredictivePlanner(self.profile, cfg)
        p, d = initial_fleet(setting, policy)
        # the first fleet within the bounds: a pinned pool starts at its pin
        p, d = min(max(p, cfg.min_prefill), cfg.max_prefill), min(max(d, cfg.min_decode), cfg.max_decode)
        result = run(self.requests, policy, setting.engine((p, d)), None, self.profile.prefill.ttft_ms_at)
        row = score(result, "what-if", self.feasible(cfg))
        return {k: row[k] for k in SHOWN if k in row}


def compare(requests: list[Request], profile: PerformanceProfile, current: PlannerConfig,
            proposed: PlannerConfig, pools: Pools) -> dict:
    """Both settings replayed on `requests`: their scores, the settings, and proposed - current."""
    replayer = Replayer(requests, profile)
    started = time.perf_counter()
    out = {"current": {"settings": _described(current, pools), **replayer.run(current)},
           "proposed": {"settings": _described(proposed, pools), **replayer.run(proposed)}}
    out["difference"] = {k: out["proposed"][k] - out["current"][k]
                         for k in ("sla_attainment", "feasible_attainment", "gpu_hours", "max_gpus")
                         if out["proposed"].get(k) is not None and out["current"].get(k) is not None}
    out["replay_seconds"] = time.perf_counter() - started
    return out
