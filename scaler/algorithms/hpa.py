"""The autoscaling/v2 HPA algorithm as kube-controller-manager runs it, for one target.

desired = ceil(current * value / target) for a per-pod metric, or ceil(total / target) for an
External AverageValue metric; within the tolerance nothing changes; scale-down takes the
highest recommendation of the stabilization window; the default behavior limits scale-up to
max(4 pods, 100%) and scale-down to 100% per 15 s period.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class HPAConfig:
    min_replicas: int = 1
    max_replicas: int = 100
    tolerance: float = 0.1
    downscale_stabilization_s: float = 300.0
    upscale_stabilization_s: float = 0.0
    scale_up_pods: int = 4
    scale_up_percent: float = 100.0
    scale_down_percent: float = 100.0
    policy_period_s: float = 15.0


@dataclass
class HPA:
    config: HPAConfig = field(default_factory=HPAConfig)
    _recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    _events: deque[tuple[float, int]] = field(default_factory=deque)  # (time, replica change)

    def raw_desired(self, current: int, usage_ratio: float) -> int:
        """The proposal before stabilization and rate limits; `usage_ratio` = value / target."""
        if current == 0:
            return math.ceil(usage_ratio) if usage_ratio > 0 else 0
        if abs(1.0 - usage_ratio) <= self.config.tolerance:
            return current
        return math.ceil(current * usage_ratio)

    def desired_from_average_value(self, total: float, target: float, current: int) -> int:
        """External metric with an AverageValue target: needs no pods."""
        if target <= 0:
            raise ValueError("target must be > 0")
        ratio = total / (target * current) if current > 0 else total / target
        if current > 0:
            return self.raw_desired(current, ratio)
        return math.ceil(total / target)

    def step(self, now: float, current: int, proposal: int) -> int:
        """Stabilize and rate-limit `proposal`; return the replicas to set."""
        cfg = self.config
        proposal = max(cfg.min_replicas, min(cfg.max_replicas, proposal))
        self._recommendations.append((now, proposal))
        horizon = max(cfg.downscale_stabilization_s, cfg.upscale_stabilization_s)
        while self._recommendations and self._recommendations[0][0] < now - horizon:
            self._recommendations.popleft()
        down_window = [r for t, r in self._recommendations if t >= now - cfg.downscale_stabilization_s]
        up_window = [r for t, r in self._recommendations if t >= now - cfg.upscale_stabilization_s]
        stabilized = current
        up_floor = min(up_window) if up_window else proposal
        down_ceiling = max(down_window) if down_window else proposal
        if up_floor > current:
            stabilized = up_floor
        elif down_ceiling < current:
            stabilized = down_ceiling
        # rate limits over the policy period
        while self._events and self._events[0][0] <= now - cfg.policy_period_s:
            self._events.popleft()
        added = sum(c for _, c in self._events if c > 0)
        removed = -sum(c for _, c in self._events if c < 0)
        period_start = current - added + removed
        if stabilized > current:
            limit = max(period_start + cfg.scale_up_pods,
                        math.ceil(period_start * (1 + cfg.scale_up_percent / 100.0)))
            stabilized = min(stabilized, max(current, limit))
        elif stabilized < current:
            limit = math.ceil(period_start * (1 - cfg.scale_down_percent / 100.0))
            stabilized = max(stabilized, min(current, limit))
        stabilized = max(cfg.min_replicas, min(cfg.max_replicas, stabilized))
        if stabilized != current:
            self._events.append((now, stabilized - current))
        return stabilized
