"""The round-robin prefill model (scaler/planner/tail.py) against Dynamo's replay engine on fixed
fleets of the DEV mooncake window, round robin: it tracks the engine where the pooled model the
oracle uses does not (long prompts queue short ones on their worker). Real engine, no mocks."""

from __future__ import annotations

import pytest

from benchmarks import prefill_model_fit as fit
from benchmarks.replay import DEV, TRACES
from scaler.profile import bundled_profile
from dynamo_scaling.traces import read_trace, scale_rate, window

PROFILE = bundled_profile()


@pytest.fixture(scope="module")
def mooncake():
    fname, a, b, rate = next(w for w in DEV if "mooncake" in w[0])
    start = a - fit.WARMUP_S
    return scale_rate(window(read_trace(TRACES / fname), start, b), rate, seed=1), a - start


@pytest.mark.parametrize("workers", [8, 12])
def test_round_robin_model_tracks_the_engine_where_the_pool_does_not(mooncake, workers):
    reqs, from_s = mooncake
    engine = fit.engine_share(reqs, workers, PROFILE, 500.0, from_s * 1000.0)
    rr = fit.model_share(reqs, workers, PROFILE, 500.0, from_s, "round_robin", 2.0)
    pooled = fit.model_share(reqs, workers, PROFILE, 500.0, from_s, "pooled", 1.0)
    assert abs(rr - engine) <= 0.02, (workers, engine, rr)
    assert pooled - engine > abs(rr - engine), (workers, engine, pooled, rr)  # the pool is optimistic
