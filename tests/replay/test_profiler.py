"""The engine profiler (scaler/replay/profiler.py) against the real replay engine: a steady decode
point really holds the batch it asks for, and reads the slower steps arrivals cause."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scaler.profile import PerformanceProfile
from scaler.replay.engine import EngineConfig
from scaler.replay.profiler import burst_decode_point, steady_decode_point, sweep

CFG = EngineConfig(startup_s=0.0)


def test_a_steady_point_holds_its_batch_and_reads_slower_steps_than_a_lockstep_batch():
    held, itl = steady_decode_point(64, 16000, CFG)
    lockstep = burst_decode_point(64, 16000, CFG)
    assert held == pytest.approx(64, rel=0.15)
    # every step also admits the requests that arrived since: at 16k context well over twice as slow
    assert itl > 2.0 * lockstep, (itl, lockstep)


def test_a_short_context_small_batch_is_about_as_fast_either_way():
    held, itl = steady_decode_point(8, 1000, CFG)
    assert held == pytest.approx(8, rel=0.15)
    assert itl == pytest.approx(burst_decode_point(8, 1000, CFG), rel=0.15)


def test_an_unknown_decode_sweep_is_refused_by_name():
    with pytest.raises(ValueError, match="decode: 'lockstep' is not one of burst, steady"):
        sweep(decode="lockstep")


def test_the_profile_command_writes_a_steady_profile_that_loads(tmp_path):
    out = tmp_path / "steady.json"
    res = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "profile", "--out", str(out),
                          "--decode-sweep", "steady"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    prof = PerformanceProfile.load(out)
    assert "steady decode" in prof.source
    # the 16k-context points reach ITLs the lockstep sweep never shows (it stays under 11 ms)
    at_16k = prof.decode.context_length == 16000
    assert prof.decode.itl_ms[at_16k].max() > 25.0
    assert "decode" in res.stderr and "decoding" in res.stderr
    bad = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "profile", "--out", str(out),
                          "--decode-sweep", "lockstep"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--decode-sweep" in bad.stderr
