"""The load forecasters, value by value: each table row feeds a series (one value per interval)
and checks the forecast and the upper quantile against the forecaster's arithmetic by hand."""

from __future__ import annotations

import math

import pytest

from scaler.planner import predictors
from scaler.planner.predictors import EWMA, Holt, LastValue, RecentPeak


def feed(p, values, dt: float = 1.0):
    for v in values:
        p.update(v, dt)
    return p


@pytest.mark.parametrize("make, values, horizon, quantile, forecast, upper", [
    # last value; residuals 2 then 2: std 2
    (LastValue, [2.0, 4.0], 10.0, 0.9, 4.0, 4.0 + 1.2816 * 2.0),
    # EWMA 0.3: level 10 -> 13, one residual of 10
    (EWMA, [10.0, 20.0], 10.0, 0.99, 13.0, 13.0 + 2.3263 * 10.0),
    (EWMA, [10.0, 20.0], 10.0, 0.5, 13.0, 13.0),  # the median adds nothing
    # Holt 0.4/0.1 at dt=1: level 10.8, trend 0.08/s, one residual of 2
    (Holt, [10.0, 12.0], 10.0, 0.9, 10.8 + 0.8, 10.8 + 0.8 + 1.2816 * 2.0),
    (Holt, [10.0, 12.0], 1000.0, 0.5, 10.8 + 0.08 * 30.0, 10.8 + 0.08 * 30.0),  # trend capped at 30 s
    (Holt, [10.0, 0.0], 100.0, 0.5, 0.0, 0.0),  # a falling trend never forecasts below zero
    # not finite or negative counts as idle
    (LastValue, [math.nan], 1.0, 0.5, 0.0, 0.0),
    (EWMA, [-5.0], 1.0, 0.5, 0.0, 0.0),
])
def test_forecast_and_upper(make, values, horizon, quantile, forecast, upper):
    p = feed(make(), values)
    assert p.forecast(horizon) == pytest.approx(forecast)
    assert p.upper(horizon, quantile) == pytest.approx(upper)


def test_holt_trend_scales_with_interval_length():
    """The trend is per second: the same rise over 10 s intervals is a tenth of the slope."""
    fast, slow = feed(Holt(), [10.0, 12.0], dt=1.0), feed(Holt(), [10.0, 12.0], dt=10.0)
    assert fast.trend == pytest.approx(0.08) and slow.trend == pytest.approx(0.008)


def test_recent_peak_forgets_after_its_window():
    p = RecentPeak(window_s=10.0)
    seen = [feed(p, [v], dt=5.0).forecast(0.0) for v in (5.0, 9.0, 1.0, 2.0, 2.0)]
    # the 9 (at t=10) is kept while it is within 10 s of now, dropped at t=25
    assert seen == [5.0, 9.0, 9.0, 9.0, 2.0]
    assert p.upper(60.0, 0.99) == 2.0  # the peak is its own upper bound


@pytest.mark.parametrize("name, kind", [("last", LastValue), ("ewma", EWMA), ("holt", Holt),
                                        ("seasonal", predictors.Seasonal)])
def test_make_by_name(name, kind):
    assert isinstance(predictors.make(name), kind)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        predictors.make("arima")
    with pytest.raises(ValueError):
        predictors.z_for(0.75)


@pytest.mark.parametrize("name", ["holt", "seasonal"])
def test_make_carries_the_trend_only_as_far_as_asked(name):
    capped, default = predictors.make(name, trend_horizon_s=30.0), predictors.make(name, trend_horizon_s=300.0)
    for p in (capped, default):
        feed(p, [10.0, 12.0])
    # Holt 0.4/0.1 at dt=1: level 10.8, trend 0.08/s (the seasonal profile is flat after two values)
    assert capped.forecast(125.0) == pytest.approx(capped.forecast(30.0))
    assert default.forecast(125.0) > capped.forecast(125.0)
    if name == "holt":
        assert capped.forecast(125.0) == pytest.approx(10.8 + 0.08 * 30.0)
    assert predictors.make(name, trend_horizon_s=0.0).forecast(0.0) == 0.0  # unfed


def test_the_default_trend_horizon_is_30_s():
    p = predictors.make("holt")
    feed(p, [10.0, 12.0])
    assert p.forecast(125.0) == pytest.approx(p.forecast(30.0))


def test_a_negative_trend_horizon_is_refused():
    with pytest.raises(ValueError, match="trend_horizon_s"):
        predictors.make("holt", trend_horizon_s=-1.0)
