"""`static-prior`, a replay policy (plugin; benchmarks/replay.py registers it): the fixed fleet an
operator would size from the load seen before the scored window, i.e. the peak need of the warm-up
(the same need and peak rule as `static`, over the 30 s windows that end within the warm-up).
`static` is sized for the scored window's own peak, which only hindsight knows; this one is the
fixed fleet without foresight."""

from __future__ import annotations

from scaler.replay import baselines, policies
from scaler.replay.needs import peak_need

WINDOW_S = 30.0  # the need windows static is sized over (RunContext.needs)


def _static_prior(ctx: policies.RunContext) -> baselines.Static:
    seen = [n for n in ctx.needs(WINDOW_S) if n.start_s + WINDOW_S <= ctx.warmup_s]
    if not seen:
        raise ValueError(f"static-prior is sized from the load before the scored window: it needs a warm-up of "
                         f"at least {WINDOW_S:.0f} s (got {ctx.warmup_s:g} s)")
    p, d = peak_need(seen)
    return baselines.Static(p, d, name="static-prior")


policies.register_policy("static-prior", _static_prior)
