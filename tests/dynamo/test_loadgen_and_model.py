"""Pure parts of the live-Dynamo tooling: the model card's tokenizer, synthetic load, summaries
and the load generator's argument checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tokenizers import Tokenizer

from devcluster.dynamo.model import ensure_model, prompt_of
from devcluster.loadgen import Outcome, summarize, synthetic


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


@pytest.mark.parametrize("args, field", [(["--rate", "0"], "--rate"), (["--rate", "1", "--speed", "0"], "--speed"),
                                         (["--trace", "/nonexistent.jsonl"], "--trace")])
def test_cli_rejects_bad_input_naming_the_flag(args, field):
    r = subprocess.run([sys.executable, "-m", "devcluster.loadgen", "--url", "http://127.0.0.1:1", *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert field in r.stderr
