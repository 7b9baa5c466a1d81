"""Load forecasters behind one interface. Each sees one value per interval and forecasts the
mean and an upper quantile `h` seconds ahead. Idle intervals are zeros, never NaN."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Z = {0.5: 0.0, 0.8: 0.8416, 0.9: 1.2816, 0.95: 1.6449, 0.99: 2.3263}


def z_for(quantile: float) -> float:
    if quantile not in Z:
        raise ValueError(f"quantile must be one of {sorted(Z)}")
    return Z[quantile]


class Predictor(Protocol):
    def update(self, value: float, dt: float) -> None: ...

    def forecast(self, horizon_s: float) -> float: ...

    def upper(self, horizon_s: float, quantile: float) -> float: ...


def _clean(v: float) -> float:
    return v if math.isfinite(v) and v > 0 else 0.0


@dataclass
class _Residuals:
    """Running scale of one-step forecast errors, for the upper quantile."""

    alpha: float = 0.2
    var: float = 0.0
    n: int = 0

    def add(self, err: float) -> None:
        self.var = err * err if self.n == 0 else (1 - self.alpha) * self.var + self.alpha * err * err
        self.n += 1

    @property
    def std(self) -> float:
        return math.sqrt(self.var)


@dataclass
class LastValue:
    last: float = 0.0
    res: _Residuals = field(default_factory=_Residuals)

    def update(self, value: float, dt: float) -> None:
        value = _clean(value)
        self.res.add(value - self.last)
        self.last = value

    def forecast(self, horizon_s: float) -> float:
        return self.last

    def upper(self, horizon_s: float, quantile: float) -> float:
        return self.last + z_for(quantile) * self.res.std


@dataclass
class EWMA:
    alpha: float = 0.3
    level: float | None = None
    res: _Residuals = field(default_factory=_Residuals)

    def update(self, value: float, dt: float) -> None:
        value = _clean(value)
        if self.level is None:
            self.level = value
            return
        self.res.add(value - self.level)
        self.level += self.alpha * (value - self.level)

    def forecast(self, horizon_s: float) -> float:
        return self.level or 0.0

    def upper(self, horizon_s: float, quantile: float) -> float:
        return self.forecast(horizon_s) + z_for(quantile) * self.res.std


# how far ahead a trend is carried unless configured. A trend read from a few seconds of clumped
# arrivals is no forecast for minutes ahead (docs/planner.md, "Deciding it on shapes")
DEFAULT_TREND_HORIZON_S = 30.0


@dataclass
class Holt:
    """Level + trend (double exponential smoothing); the trend is per second."""

    alpha: float = 0.4
    beta: float = 0.1
    level: float | None = None
    trend: float = 0.0
    res: _Residuals = field(default_factory=_Residuals)
    max_horizon_s: float = DEFAULT_TREND_HORIZON_S

    def update(self, value: float, dt: float) -> None:
        value = _clean(value)
        dt = max(dt, 1e-3)
        if self.level is None:
            self.level = value
            return
        predicted = self.level + self.trend * dt
        self.res.add(value - predicted)
        level = self.alpha * value + (1 - self.alpha) * predicted
        self.trend = self.beta * (level - self.level) / dt + (1 - self.beta) * self.trend
        self.level = level

    def forecast(self, horizon_s: float) -> float:
        if self.level is None:
            return 0.0
        return max(0.0, self.level + self.trend * min(horizon_s, self.max_horizon_s))

    def upper(self, horizon_s: float, quantile: float) -> float:
        return self.forecast(horizon_s) + z_for(quantile) * self.res.std


@dataclass
class Seasonal:
    """Holt on top of a repeating profile of `period_s` with `bins` slots (e.g. a day)."""

    period_s: float = 86400.0
    bins: int = 96
    base: Holt = field(default_factory=Holt)
    profile: list[float] = field(default_factory=list)
    t: float = 0.0

    def _bin(self, t: float) -> int:
        return int((t % self.period_s) / self.period_s * self.bins)

    def update(self, value: float, dt: float) -> None:
        if not self.profile:
            self.profile = [1.0] * self.bins
        self.t += dt
        value = _clean(value)
        b = self._bin(self.t)
        lvl = max(self.base.forecast(0), 1e-9)
        self.profile[b] = 0.9 * self.profile[b] + 0.1 * (value / lvl if lvl > 1e-6 else 1.0)
        self.base.update(value / max(self.profile[b], 1e-3), dt)

    def forecast(self, horizon_s: float) -> float:
        factor = self.profile[self._bin(self.t + horizon_s)] if self.profile else 1.0
        return self.base.forecast(horizon_s) * factor

    def upper(self, horizon_s: float, quantile: float) -> float:
        factor = self.profile[self._bin(self.t + horizon_s)] if self.profile else 1.0
        return self.base.upper(horizon_s, quantile) * factor


@dataclass
class RecentPeak:
    """The highest value of the last `window_s` seconds: a floor that bursts cannot slip under."""

    window_s: float = 60.0
    values: deque[tuple[float, float]] = field(default_factory=deque)
    t: float = 0.0

    def update(self, value: float, dt: float) -> None:
        self.t += dt
        self.values.append((self.t, _clean(value)))
        while self.values and self.values[0][0] < self.t - self.window_s:
            self.values.popleft()

    def forecast(self, horizon_s: float) -> float:
        return max((v for _, v in self.values), default=0.0)

    def upper(self, horizon_s: float, quantile: float) -> float:
        return self.forecast(horizon_s)


_MAKERS: dict[str, Callable[[float], Predictor]] = {
    "last": lambda h: LastValue(),
    "ewma": lambda h: EWMA(),
    "holt": lambda h: Holt(max_horizon_s=h),
    "seasonal": lambda h: Seasonal(base=Holt(max_horizon_s=h)),
}


def make(name: str, trend_horizon_s: float = DEFAULT_TREND_HORIZON_S) -> Predictor:
    """A forecaster by name; those with a trend carry it at most `trend_horizon_s` ahead."""
    if name not in _MAKERS:
        raise ValueError(f"unknown predictor {name!r}; choose one of {sorted(_MAKERS)}")
    if not trend_horizon_s >= 0:
        raise ValueError(f"trend_horizon_s must be >= 0, got {trend_horizon_s}")
    return _MAKERS[name](trend_horizon_s)
