"""Pure parts of the live-Dynamo tooling: the model card's tokenizer, synthetic load, summaries
and the load generator's argument checks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import numpy as np
import pytest
from tokenizers import Tokenizer

from devcluster.dynamo.model import ensure_model, prompt_of
from devcluster.loadgen import PAUSE_RECOVERY_S, HostPause, Outcome, PauseWatch, run_load, summarize, synthetic


def test_prompt_has_exactly_the_requested_tokens(tmp_path):
    model = ensure_model(tmp_path)
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    for n in (1, 17, 3000):
        assert len(tok.encode(prompt_of(n, seed=n)).ids) == n
    assert prompt_of(50, seed=1) != prompt_of(50, seed=2)
    assert ensure_model(tmp_path) == model  # cached by content


def test_synthetic_load_is_evenly_spaced():
    reqs = synthetic(rate_per_s=4, duration_s=2.5, input_length=100, output_length=10)
    assert [r.timestamp_ms for r in reqs] == [0, 250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2250]
    with pytest.raises(ValueError):
        synthetic(0, 10, 1, 1)


def test_seeded_synthetic_load_is_poisson_at_the_same_mean_rate():
    reqs = synthetic(rate_per_s=4, duration_s=500, input_length=100, output_length=10, seed=7)
    at = np.array([r.timestamp_ms for r in reqs])
    gaps = np.diff(at)
    assert len(reqs) == 2000 and at[0] == 0 and (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(250, rel=0.05)
    # exponential gaps: their spread is their mean (evenly spaced ones have none)
    assert gaps.std() == pytest.approx(250, rel=0.10)
    assert [r.timestamp_ms for r in synthetic(4, 500, 100, 10, seed=7)] == list(at)
    assert [r.timestamp_ms for r in synthetic(4, 500, 100, 10, seed=8)] != list(at)


def test_summary_counts_failures_by_kind():
    outs = [Outcome(0, 0.0, True, ttft_s=0.1, itl_s=0.01), Outcome(1, 0.1, True, ttft_s=0.3, itl_s=0.03),
            Outcome(2, 0.2, False, error="http 503: overloaded"), Outcome(3, 0.3, False, error="short: 3 of 9 tokens")]
    s = summarize(outs, 2.0)
    assert (s.requests, s.ok, s.failed) == (4, 2, 2)
    assert s.errors == {"http 503": 1, "short": 1}
    assert s.ttft_ms["p50"] == pytest.approx(200)
    assert "2 failed" in s.line()
    assert s.failed_unexplained == 2  # no host pause to explain them


class FakeClocks:
    def __init__(self) -> None:
        self.wall, self.mono = 1000.0, 50.0

    def advance(self, wall: float, mono: float) -> None:
        self.wall += wall
        self.mono += mono


def test_pause_watch_sees_the_wall_clock_jump_of_a_paused_host_and_a_stalled_loop():
    c = FakeClocks()
    watch = PauseWatch(start=c.mono, interval_s=0.25, min_pause_s=3.0, wall=lambda: c.wall, mono=lambda: c.mono)
    c.advance(0.25, 0.25)
    assert watch.tick() is None
    c.advance(0.3, 0.3)  # a little late, NTP-sized drift: nothing
    assert watch.tick() is None
    c.advance(30.2, 0.25)  # a paused VM: the guest's monotonic clock stood still, the wall clock did not
    assert watch.tick() == HostPause(at_s=pytest.approx(0.8), seconds=pytest.approx(29.95))
    c.advance(5.25, 5.25)  # a loop blocked for 5 s
    assert watch.tick() == HostPause(at_s=pytest.approx(6.05), seconds=pytest.approx(5.0))
    c.advance(2.0, 2.0)  # below the threshold
    assert watch.tick() is None
    assert len(watch.pauses) == 2


def test_failures_in_flight_or_sent_soon_after_a_pause_are_explained_by_it_and_no_others():
    pause = HostPause(at_s=10.0, seconds=30.0)
    outs = [Outcome(0, 2.0, False, error="http 404", ended_at_s=3.0),     # before: unexplained
            Outcome(1, 9.0, False, error="http 404", ended_at_s=11.0),    # in flight across it
            Outcome(2, 10.0 + PAUSE_RECOVERY_S - 1, False, error="http 404", ended_at_s=40.0),
            Outcome(3, 10.0 + PAUSE_RECOVERY_S + 1, False, error="http 404", ended_at_s=42.0),  # after recovery
            Outcome(4, 12.0, True, ttft_s=0.1, ended_at_s=12.5)]
    s = summarize(outs, 60.0, [pause])
    assert (s.failed, s.failed_unexplained) == (4, 2)
    assert s.host_pauses == [{"at_s": 10.0, "seconds": 30.0}]
    assert "host paused 30.0 s at 10.0 s" in s.line()


def test_run_load_reports_a_stalled_loop_as_a_pause():
    async def scenario():
        async def stall():
            await asyncio.sleep(0.3)
            time.sleep(3.5)  # blocks the event loop, as a frozen process would be

        asyncio.get_running_loop().create_task(stall())
        # nothing listens on port 1: every request fails, none of them during the stall
        return await run_load("http://127.0.0.1:1", synthetic(4, 1.0, 10, 2), progress_every_s=1)

    summary, outcomes = asyncio.run(scenario())
    assert len(summary.host_pauses) == 1 and summary.host_pauses[0]["seconds"] >= 3.0
    assert summary.failed == 4
    assert all(o.ended_at_s is not None and o.ended_at_s >= o.sent_at_s for o in outcomes)


@pytest.mark.parametrize("args, field", [(["--rate", "0"], "--rate"), (["--rate", "1", "--speed", "0"], "--speed"),
                                         (["--trace", "/nonexistent.jsonl"], "--trace")])
def test_cli_rejects_bad_input_naming_the_flag(args, field):
    r = subprocess.run([sys.executable, "-m", "devcluster.loadgen", "--url", "http://127.0.0.1:1", *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert field in r.stderr
