"""The synthetic shapes of benchmarks/traffic_shapes.py: clumped arrivals keep the shape's mean
rate and are as clumpy as asked; Poisson ones are not clumpy."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.traffic_shapes import (ANNEX, ATTIC, CELLAR, FRESH, HARSH, LOFT, RESERVE, SEALED, SHAPES, VAULT,
                                       arrival_times, clumped_arrival_times)


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


def _fresh(name: str) -> tuple[np.ndarray, np.ndarray]:
    from benchmarks.traffic_shapes import synthesize
    reqs = synthesize(FRESH[name])
    return np.array([r.timestamp_ms for r in reqs]) / 1000.0, np.array([r.input_length for r in reqs])


def test_the_fresh_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    assert not set(FRESH) & (set(SHAPES) | set(HARSH))
    # the cycle: minute counts from about 4 to about 32 req/s, twice low and once high in 15 min
    times, _ = _fresh("fresh_cycle")
    per_min = np.histogram(times, bins=15, range=(0, DURATION_S))[0] / 60.0
    assert per_min[0] < 8 and per_min[10] < 8 and 26 < per_min[5]
    # the wide mix: about one prompt in twenty above 10k tokens, at a steady Poisson rate
    times, isl = _fresh("fresh_mixed")
    assert 0.03 < float(np.mean(isl > 10_000)) < 0.08
    assert counts_dispersion(times, DURATION_S, 5.0) < 1.5
    # the trains: three 10 s spikes of 30 req/s in the first 70 s of every 4 minutes
    times, _ = _fresh("fresh_trains")
    ten = np.histogram(times, bins=int(DURATION_S / 10), range=(0, DURATION_S))[0] / 10.0
    assert all(ten[k] > 20 for k in (0, 3, 6, 24, 27, 30, 48, 51, 54))
    assert all(ten[k] < 8 for k in (1, 2, 4, 5, 10, 20, 40, 60))
    # the decline: from about 40 to about 4 req/s, clumped
    times, _ = _fresh("fresh_decline")
    per_min = np.histogram(times, bins=15, range=(0, DURATION_S))[0] / 60.0
    assert per_min[0] > 33 and per_min[-1] < 8
    assert counts_dispersion(times, DURATION_S, 1.0) > 3


def _reserve(name: str) -> tuple[np.ndarray, np.ndarray]:
    from benchmarks.traffic_shapes import synthesize
    reqs = synthesize(RESERVE[name])
    return np.array([r.timestamp_ms for r in reqs]) / 1000.0, np.array([r.output_length for r in reqs])


def test_the_reserve_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    assert not set(RESERVE) & (set(SHAPES) | set(HARSH) | set(FRESH))
    # the surge: about 5 req/s, about 35 from 420 to 600 s, about 5 again after
    times, _ = _reserve("reserve_surge")
    per_min = np.histogram(times, bins=15, range=(0, DURATION_S))[0] / 60.0
    assert per_min[2] < 8 and per_min[8] > 30 and per_min[12] < 8
    # the decode cycle: answers around 1k tokens, load from about 2 to about 12 req/s
    times, osl = _reserve("reserve_decode_cycle")
    assert 800 < float(np.median(osl)) < 1200
    per_30 = np.histogram(times, bins=30, range=(0, DURATION_S))[0] / 30.0
    assert per_30[0] < 4 and per_30[6] > 9
    # the regimes: 30 s levels as listed, each read within Poisson noise
    from benchmarks.traffic_shapes import _REGIMES
    times, _ = _reserve("reserve_regimes")
    per_30 = np.histogram(times, bins=30, range=(0, DURATION_S))[0] / 30.0
    assert np.all(np.abs(per_30 - np.array(_REGIMES)) < 4.0 + 0.25 * np.array(_REGIMES))
    # turning: Poisson at 1 req/s, then clumps at 6 req/s
    times, _ = _reserve("reserve_turning")
    early, late = times[times < 450], times[times >= 450]
    assert 350 < early.size < 550 and 2200 < late.size < 3200
    assert counts_dispersion(early, 450.0, 5.0) < 1.6 and counts_dispersion(late - 450, 450.0, 5.0) > 10


def _times(shapes: dict, name: str) -> np.ndarray:
    """Arrival times (s) of one shape of a set, as the benchmark synthesizes them."""
    from benchmarks.traffic_shapes import synthesize
    return np.array([r.timestamp_ms for r in synthesize(shapes[name])]) / 1000.0


def test_the_sealed_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    assert not set(SEALED) & (set(SHAPES) | set(HARSH) | set(FRESH) | set(RESERVE))
    per_min = lambda times: np.histogram(times, bins=15, range=(0, DURATION_S))[0] / 60.0  # noqa: E731
    # the late step: about 3 req/s up to 420 s, about 30 after, Poisson on both sides
    times = _times(SEALED, "sealed_late_step")
    m = per_min(times)
    assert np.all(m[:7] < 4.5) and np.all(m[7:] > 26)
    assert counts_dispersion(times[times < 420], 420.0, 5.0) < 1.6
    assert counts_dispersion(times[times >= 420] - 420, DURATION_S - 420, 5.0) < 1.6
    # the busy wave: between about 30 and 50 req/s, Poisson
    times = _times(SEALED, "sealed_busy_wave")
    m = per_min(times)
    assert m.min() < 34 and m.max() > 46 and np.all((m > 27) & (m < 53))
    # middle clumps: 15 req/s, clumped
    times = _times(SEALED, "sealed_mid_clumps")
    assert 12 < times.size / DURATION_S < 18 and counts_dispersion(times, DURATION_S, 5.0) > 5
    # stairs: about 5, 20 and 45 req/s, five minutes each
    m = per_min(_times(SEALED, "sealed_stairs"))
    assert np.all(m[:5] < 7) and np.all((m[5:10] > 17) & (m[5:10] < 23)) and np.all(m[10:] > 41)


def test_the_vault_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    assert not set(VAULT) & (set(SHAPES) | set(HARSH) | set(FRESH) | set(RESERVE) | set(SEALED))
    # the jump: about 2 req/s up to 500 s, about 20 after, Poisson
    times = _times(VAULT, "vault_jump")
    before, after = times[times < 500], times[times >= 500]
    assert 1.5 < before.size / 500 < 2.5 and 18 < after.size / (DURATION_S - 500) < 22
    assert counts_dispersion(after - 500, DURATION_S - 500, 5.0) < 1.6
    # light and steady: about 5 req/s, Poisson
    times = _times(VAULT, "vault_light_steady")
    assert 4.5 < times.size / DURATION_S < 5.5 and counts_dispersion(times, DURATION_S, 5.0) < 1.6
    # the double jump: about 4, 12 and 40 req/s, clumped
    times = _times(VAULT, "vault_double_jump")
    per_5min = np.histogram(times, bins=3, range=(0, DURATION_S))[0] / 300.0
    assert 3 < per_5min[0] < 5 and 10 < per_5min[1] < 14 and 36 < per_5min[2] < 44
    assert counts_dispersion(times[times < 300], 300.0, 5.0) > 2
    # light bursts: 25 req/s for 20 s every 4 minutes from 240 s, 3 req/s between
    times = _times(VAULT, "vault_light_bursts")
    per_10s = np.histogram(times, bins=int(DURATION_S / 10), range=(0, DURATION_S))[0] / 10.0
    assert per_10s[24] > 18 and per_10s[48] > 18 and per_10s[30] < 7 and per_10s[0:24].max() < 8


def test_the_cellar_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    assert not set(CELLAR) & (set(SHAPES) | set(HARSH) | set(FRESH) | set(RESERVE) | set(SEALED) | set(VAULT))
    per_s = lambda times: np.histogram(times, bins=int(DURATION_S), range=(0, DURATION_S))[0]  # noqa: E731
    # big clumps: 80 req/s for 5 s at 200, 350, 500 ... s, 8 req/s between
    n = per_s(_times(CELLAR, "cellar_big_clumps"))
    for start in (200, 350, 500, 650, 800):
        assert n[start:start + 5].sum() > 320
    assert n[210:345].mean() == pytest.approx(8.0, rel=0.15) and n[:200].mean() == pytest.approx(8.0, rel=0.15)
    # surges: 60 req/s for 30 s at 250, 550 and 850 s, 5 req/s between
    n = per_s(_times(CELLAR, "cellar_half_minute_surges"))
    for start in (250, 550, 850):
        assert n[start:start + 30].mean() == pytest.approx(60.0, rel=0.1)
    assert n[290:540].mean() == pytest.approx(5.0, rel=0.15)
    # the clumped step: about 4 req/s, then about 40 from 450 s, clumped on both sides
    times = _times(CELLAR, "cellar_clumped_step")
    before, after = times[times < 450], times[times >= 450]
    assert 3.2 < before.size / 450 < 4.8 and 36 < after.size / (DURATION_S - 450) < 44
    assert counts_dispersion(before, 450.0, 5.0) > 2 and counts_dispersion(after - 450, DURATION_S - 450, 5.0) > 2
    # the fast ramp: about 3 req/s, then 60 from 460 s, Poisson
    times = _times(CELLAR, "cellar_fast_ramp")
    n = per_s(times)
    assert n[:400].mean() == pytest.approx(3.0, rel=0.15) and n[460:].mean() == pytest.approx(60.0, rel=0.05)
    assert 20 < n[420:440].mean() < 40
    assert counts_dispersion(times[times >= 460] - 460, DURATION_S - 460, 5.0) < 1.6


def test_the_attic_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    seen = set(SHAPES) | set(HARSH) | set(FRESH) | set(RESERVE) | set(SEALED) | set(VAULT) | set(CELLAR)
    assert not set(ATTIC) & seen
    per_min = lambda times: np.histogram(times, bins=15, range=(0, DURATION_S))[0] / 60.0  # noqa: E731
    # the step: about 5 req/s up to 420 s, about 50 after, Poisson
    times = _times(ATTIC, "attic_step")
    m = per_min(times)
    assert np.all(m[:7] < 6.5) and np.all(m[7:] > 46)
    assert counts_dispersion(times[times >= 420] - 420, DURATION_S - 420, 5.0) < 1.6
    # returning surges: 45 req/s for 60 s at 240, 480 and 720 s, 6 between
    per_s = np.histogram(_times(ATTIC, "attic_returning_surges"), bins=int(DURATION_S), range=(0, DURATION_S))[0]
    for start in (240, 480, 720):
        assert per_s[start:start + 60].mean() == pytest.approx(45.0, rel=0.1)
    assert per_s[300:480].mean() == pytest.approx(6.0, rel=0.15)
    # the long-answer step: about 3 req/s, then about 30 from 450 s, with answers of about 500 tokens
    reqs = ATTIC["attic_long_answer_step"]
    times = _times(ATTIC, "attic_long_answer_step")
    before, after = times[times < 450], times[times >= 450]
    assert 2.5 < before.size / 450 < 3.5 and 27 < after.size / (DURATION_S - 450) < 33
    assert reqs.osl[0] == 500
    # the slow climb: about 4 req/s, 26 at 540 s, 48 from 780 s
    m = per_min(_times(ATTIC, "attic_slow_climb"))
    assert np.all(m[:5] < 5.5) and 22 < m[8] < 31 and np.all(m[13:] > 44)


def test_the_loft_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S, synthesize
    seen = set(SHAPES) | set(HARSH) | set(FRESH) | set(RESERVE) | set(SEALED) | set(VAULT) | set(CELLAR) | set(ATTIC)
    assert not set(LOFT) & seen
    per_min = lambda times: np.histogram(times, bins=15, range=(0, DURATION_S))[0] / 60.0  # noqa: E731
    # the long-prompt step: about 2 req/s, then 12 from 450 s, prompts of about 6,000 tokens
    reqs = synthesize(LOFT["loft_long_prompt_step"])
    times = np.array([r.timestamp_ms for r in reqs]) / 1000.0
    assert 1.5 < (times < 450).sum() / 450 < 2.5 and 11 < (times >= 450).sum() / (DURATION_S - 450) < 13
    assert 5000 < np.median([r.input_length for r in reqs]) < 7000
    # two steps: about 5, 20 and 45 req/s
    m = per_min(_times(LOFT, "loft_two_steps"))
    assert np.all(m[:5] < 6.5) and np.all((m[6:10] > 17) & (m[6:10] < 23)) and np.all(m[10:] > 41)
    # down and up: about 30, 5 over 400-600 s, 30 again
    per_s = np.histogram(_times(LOFT, "loft_down_and_up"), bins=int(DURATION_S), range=(0, DURATION_S))[0]
    assert per_s[:400].mean() == pytest.approx(30.0, rel=0.05) and per_s[400:600].mean() == pytest.approx(5.0, rel=0.15)
    assert per_s[600:].mean() == pytest.approx(30.0, rel=0.05)
    # steady clumps: 20 req/s, clumped
    times = _times(LOFT, "loft_steady_clumps")
    assert 18 < times.size / DURATION_S < 22 and counts_dispersion(times, DURATION_S, 5.0) > 3


def test_the_annex_shapes_are_what_they_say():
    from benchmarks.traffic_shapes import DURATION_S
    seen = (set(SHAPES) | set(HARSH) | set(FRESH) | set(RESERVE) | set(SEALED) | set(VAULT) | set(CELLAR)
            | set(ATTIC) | set(LOFT))
    assert not set(ANNEX) & seen
    per_s = lambda name: np.histogram(_times(ANNEX, name), bins=int(DURATION_S), range=(0, DURATION_S))[0]  # noqa: E731
    # clusters of 30 s every 150 s at a rate moving linearly between 100 and 30 req/s, 3 between
    for name, first, last in (("annex_shrinking_clusters", 100.0, 30.0), ("annex_growing_clusters", 30.0, 100.0)):
        counts = per_s(name)
        for start in (0, 300, 600, 750):
            expected = first + (last - first) * (start + 15) / DURATION_S
            assert counts[start:start + 30].mean() == pytest.approx(expected, rel=0.15)
        assert counts[40:140].mean() == pytest.approx(3.0, rel=0.25)
    # the quiet gap: 60 req/s for 20 s every 3 minutes, 3 between, and not one request over 480-720 s
    counts = per_s("annex_quiet_gap")
    assert counts[480:720].sum() == 0
    for start in (0, 180, 360, 720):
        assert counts[start:start + 20].mean() == pytest.approx(60.0, rel=0.15)
    assert counts[200:350].mean() == pytest.approx(3.0, rel=0.25)
    # the clumped wave: about 5 req/s at 0 and 600 s, 35 at 300 s, clumped
    times = _times(ANNEX, "annex_clumped_wave")
    counts = np.histogram(times, bins=int(DURATION_S), range=(0, DURATION_S))[0]
    assert counts[:60].mean() < 9 and counts[270:330].mean() == pytest.approx(34.0, rel=0.15)
    assert counts[570:630].mean() < 9 and counts_dispersion(times, DURATION_S, 5.0) > 3


def test_a_shape_outside_the_chosen_set_is_refused(monkeypatch, capsys):
    from benchmarks import traffic_shapes
    monkeypatch.setattr("sys.argv", ["traffic_shapes.py", "--set", "harsh", "--shapes", "step"])
    with pytest.raises(SystemExit) as e:
        traffic_shapes.main()
    assert e.value.code == 2
    assert "--shapes: step not in --set harsh" in capsys.readouterr().err
