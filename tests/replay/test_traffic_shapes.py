"""The synthetic shapes of benchmarks/traffic_shapes.py: clumped arrivals keep the shape's mean
rate and are as clumpy as asked; Poisson ones are not clumpy."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.traffic_shapes import HARSH, SHAPES, arrival_times, clumped_arrival_times


def dispersion(times: np.ndarray, duration_s: float) -> float:
    """Index of dispersion of 1 s counts: 1 for Poisson arrivals, more when they come in clumps."""
    counts = np.histogram(times, bins=int(duration_s), range=(0, duration_s))[0]
    return float(counts.var() / counts.mean())


def test_clumped_arrivals_keep_the_mean_rate_and_clump():
    rng = np.random.default_rng(3)
    times = clumped_arrival_times(lambda t: 4.0, lambda t: 20.0, 5.0, 3000.0, rng)
    assert np.all(np.diff(times) >= 0) and times.min() >= 0 and times.max() < 3000.0
    assert times.size / 3000.0 == pytest.approx(4.0, rel=0.1)
    assert dispersion(times, 3000.0) > 3
    assert dispersion(arrival_times(lambda t: 4.0, 3000.0, rng), 3000.0) == pytest.approx(1.0, abs=0.2)


def test_growing_clumps_grow():
    times = clumped_arrival_times(lambda t: 4.0, lambda t: 2.0 + 38.0 * t / 1800.0, 5.0, 1800.0,
                                  np.random.default_rng(4))
    early, late = times[times < 600], times[times >= 1200] - 1200
    assert dispersion(late, 600.0) > 2 * dispersion(early, 600.0)


@pytest.mark.parametrize("name", ["clumps", "clumps_growing", "clumps_shrinking"])
def test_the_clumped_shapes_are_clumpy(name):
    from benchmarks.traffic_shapes import DURATION_S, synthesize
    reqs = synthesize(SHAPES[name])
    times = np.array([r.timestamp_ms for r in reqs]) / 1000.0
    assert dispersion(times, DURATION_S) > 3


def counts_dispersion(times: np.ndarray, duration_s: float, bin_s: float) -> float:
    counts = np.histogram(times, bins=int(duration_s / bin_s), range=(0, duration_s))[0]
    return float(counts.var() / counts.mean())


@pytest.mark.parametrize("name", sorted(HARSH))
def test_the_harsh_shapes_clump_like_the_azure_trace(name):
    # the Azure code trace's windows read about 9-15 at 1 s and 75-100 at 5 s
    from benchmarks.traffic_shapes import DURATION_S, synthesize
    reqs = synthesize(HARSH[name])
    times = np.array([r.timestamp_ms for r in reqs]) / 1000.0
    assert counts_dispersion(times, DURATION_S, 1.0) > 4
    assert counts_dispersion(times, DURATION_S, 5.0) > 20
    assert not set(HARSH) & set(SHAPES)


def test_a_shape_outside_the_chosen_set_is_refused(monkeypatch, capsys):
    from benchmarks import traffic_shapes
    monkeypatch.setattr("sys.argv", ["traffic_shapes.py", "--set", "harsh", "--shapes", "step"])
    with pytest.raises(SystemExit) as e:
        traffic_shapes.main()
    assert e.value.code == 2
    assert "--shapes: step not in --set harsh" in capsys.readouterr().err
