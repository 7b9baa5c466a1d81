"""Policies by name. A factory gets the run's context and returns a fresh Policy."""

from __future__ import annotations

import importlib

from collections.abc import Callable
from dataclasses import dataclass

from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Policy
from scaler.profile import PerformanceProfile
from scaler.replay import baselines
from scaler.replay.needs import WindowNeed, peak_need, window_needs
from dynamo_scaling.traces import Request


@dataclass(frozen=True)
class RunContext:
    requests: list[Request]
    profile: PerformanceProfile
    startup_s: float
    ttft_ms: float
    itl_ms: float
    gpu_budget: int | None = None
    seed: int = 0
    attainment_target: float = 0.99
    warmup_s: float = 0.0  # the start of `requests` played before the scored window

    def needs(self, window_s: float = 30.0) -> list[WindowNeed]:
        return window_needs(self.requests, self.profile, self.ttft_ms, self.itl_ms, window_s)


Factory = Callable[[RunContext], Policy]
_REGISTRY: dict[str, Factory] = {}


def register_policy(name: str, factory: Factory) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return list(_REGISTRY)


def make(name: str, ctx: RunContext) -> Policy:
    if name not in _REGISTRY:
        raise KeyError(f"unknown planner {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name](ctx)


def planner_config(ctx: RunContext, **settings) -> PlannerConfig:
    """The planner's configuration for a run: its targets, start-up delay and budget, plus `settings`."""
    return PlannerConfig(ttft_ms=ctx.ttft_ms, itl_ms=ctx.itl_ms, startup_s=ctx.startup_s,
                         gpu_budget=ctx.gpu_budget, attainment_target=ctx.attainment_target, **settings)


def _static(ctx: RunContext) -> Policy:
    p, d = peak_need(ctx.needs())
    return baselines.Static(p, d)


def _ceiling(ctx: RunContext) -> Policy:
    p, d = baselines.ceiling_fleet(peak_need(ctx.needs()))
    return baselines.Static(p, d, name="ceiling")


def _predictive(ctx: RunContext) -> Policy:
    return PredictivePlanner(ctx.profile, planner_config(ctx))


def _predictive_attainment(ctx: RunContext) -> Policy:
    """The planner with the error-budget loop and burst headroom from rises (opt-in settings),
    as tuned on the development windows of benchmarks/replay.py."""
    cfg = planner_config(ctx, headroom="error_budget", bursts="rises", max_correction=3.0, peak_window_s=1800.0)
    return PredictivePlanner(ctx.profile, cfg, name="predictive-attainment")


def _predictive_online(ctx: RunContext) -> Policy:
    """The default planner given no profile: it fits one online (scaler/planner/online_fit.py) and
    sizes from the load path alone until the fit is trusted. The run's profile only plays the
    workers; the planner never reads it."""
    return PredictivePlanner(None, planner_config(ctx), name="predictive-online")


register_policy("predictive", _predictive)
register_policy("predictive-online", _predictive_online)
register_policy("predictive-attainment", _predictive_attainment)
register_policy("static", _static)
register_policy("hpa", lambda ctx: baselines.HPAPolicy())
register_policy("dynamo-load", lambda ctx: baselines.DynamoLoad(ctx.profile, ctx.ttft_ms))
register_policy("dynamo-throughput", lambda ctx: baselines.DynamoThroughput(ctx.profile, ctx.ttft_ms, ctx.itl_ms))
register_policy("oracle", lambda ctx: baselines.Oracle(ctx.needs(), ctx.startup_s))
register_policy("ceiling", _ceiling)


def load_plugins(modules: list[str]) -> None:
    """Import modules that register more policies (e.g. `benchmarks.dynamo_planner.baseline`,
    Dynamo's own planner code); replay itself never imports benchmark code."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"--plugin {module}: cannot import it ({exc})") from exc
