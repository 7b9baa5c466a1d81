"""The predictive planner on the tail model of need as replay policies (a replay plugin):
`dynamo-scaling replay --plugin benchmarks.tail_planner --planner predictive-tail ...`.

- `predictive-tail`: need_model=tail, bursts=mix, arrival_ca2=9 (the setting measured in
  docs/planner.md, and the planner's defaults since; arrival_ca2 from the clumping of arrivals
  within a decision interval on the DEV Azure window);
- `predictive-tail-peak`: need_model=tail with the recent-peak burst headroom;
- `predictive-mean`: the earlier defaults (need_model=mean, bursts=recent_peak), for comparison;
- `predictive-tail-kv`: predictive-tail without the forecast's share in the burst mix
  (`mix_forecast_weight: 0`), tuned on DEV under Dynamo's KV router (`--router kv_router`), where
  the forecast over a start-up overshot on the bursty Azure window (docs/planner.md);
- `predictive-tail-kv-cache`: predictive-tail-kv that also sizes for prompts in reach only from a
  cached prefix, met while it stays cached (`prefix_cache: lru`; docs/planner.md);
- `predictive-tail-floor`: predictive-tail with the steady floor (scaler/planner/floor.py): prefill
  held at the fleet that meets 0.999 over the recent load (half-life 600 s) while the load of the
  last start-up stays within it (tuned on DEV; docs/planner.md, "The steady floor");
- `predictive-rr`: the round-robin prefill model (`prefill_routing: round_robin`, arrival_ca2 2 as
  calibrated on DEV by benchmarks/prefill_model_fit.py) with the error-budget loop, the setting
  picked on DEV (docs/planner.md, "A model of round robin");
- `predictive-larger`: prefill sized for the larger of the pooled (clumps) and the round-robin
  (a short prompt behind a long one) needs, each at its own arrival_ca2, with no headroom loop
  (`max_correction: 1`): the best on DEV with the engine's own profile, the worst with a wrong one
  (docs/planner.md, "A wrong profile");
- `predictive-trend30`: the rate forecast's trend carried at most 30 s ahead (`trend_horizon_s:
  30`), the default since the comparison on the shapes; kept by name for the commands that ran it;
- `predictive-trend300`: the default before it, the trend carried up to 300 s (docs/planner.md,
  "What holds the Azure windows at long start-ups");
- `predictive-measured-spare`: arrival clumping measured from the counts of adjacent windows
  (`arrival_clumping: measured`, at most the default 9) and one spare prefill worker
  (`spare_prefill_workers: 1`), picked on DEV (docs/planner.md, "Clumping measured from counts,
  and a spare worker");
- `predictive-clumping-above`: the same estimate, taken only where it is above the default
  clumping (`arrival_clumping: above_fixed`, at most `arrival_ca2_max` 30), picked on DEV
  (docs/planner.md, "Clumping measured above the default");
- `predictive-latency-skip`: the mean-latency headroom learns nothing for prefill from a burst
  beyond what the running fleet serves by the profile (`latency_in_bursts: skip`), picked on DEV
  and the default since the comparison on the shapes (docs/planner.md, "Headroom not learned from
  bursts"); kept by name for the commands that ran it;
- `predictive-latency-learn`: the default before it, every window's latency learned;
- `predictive-clumping-capped`: the fixed clumping, but at most one prefill worker above the need at
  the measured clumping (`arrival_clumping: capped`; docs/planner.md, "The clumping margin
  capped"), the default since that comparison; kept by name for the commands that ran it;
- `predictive-clumping-fixed`: the default before it (`arrival_clumping: fixed`);
- `predictive-margin99`: the capped clumping's margin sized at 0.99 whatever the target
  (`clumping_margin_attainment: 0.99`; docs/planner.md, "A margin whatever the target");
- `predictive-backlog-horizon`: the backlog a start-up leaves grown at the lower of the last window's
  rate and the mean of the backlog horizon (`backlog_growth: horizon`; docs/planner.md, "A clump is
  not a backlog for the whole start-up");
- `predictive-backlog-interval`: the last window's rate (`backlog_growth: interval`), the default
  before that comparison;
- `predictive-backlog-release`: the scale-down hold remembers the need without the workers that drain
  a queue (`hold_backlog: release`; docs/planner.md, "Workers for a queue are not held");
- `predictive-wait`: the mean-latency headroom reads the mean wait over the prompts' idle TTFT
  against the wait the target allows (`headroom_signal: wait`; docs/planner.md, "The wait
  signal"); `-wait-fleet` with the headroom on the fleet the model sizes, `-wait-larger` with the
  larger-of-two prefill model, `-wait-larger-fleet` with both.
"""

from __future__ import annotations

from scaler.planner.predictive import PredictivePlanner
from scaler.replay import policies

VARIANTS = {
    "predictive-tail": {"need_model": "tail", "bursts": "mix", "arrival_ca2": 9.0},
    "predictive-tail-peak": {"need_model": "tail", "bursts": "recent_peak", "arrival_ca2": 1.0},
    "predictive-mean": {"need_model": "mean", "bursts": "recent_peak", "arrival_ca2": 1.0},
    "predictive-tail-kv": {"need_model": "tail", "bursts": "mix", "arrival_ca2": 9.0, "mix_forecast_weight": 0.0},
    "predictive-tail-kv-cache": {"need_model": "tail", "bursts": "mix", "arrival_ca2": 9.0, "mix_forecast_weight": 0.0,
                                 "prefix_cache": "lru"},
    "predictive-tail-floor": {"need_model": "tail", "bursts": "mix", "arrival_ca2": 9.0, "floor": "steady",
                              "floor_half_life_s": 600.0, "floor_attainment": 0.999},
    "predictive-rr": {"need_model": "tail", "bursts": "mix", "prefill_routing": "round_robin",
                      "headroom": "error_budget"},
    "predictive-larger": {"need_model": "tail", "bursts": "mix", "prefill_routing": "larger", "max_correction": 1.0},
    "predictive-trend30": {"trend_horizon_s": 30.0},
    "predictive-trend300": {"trend_horizon_s": 300.0},
    "predictive-measured-spare": {"arrival_clumping": "measured", "spare_prefill_workers": 1.0},
    "predictive-clumping-above": {"arrival_clumping": "above_fixed"},
    "predictive-latency-skip": {"latency_in_bursts": "skip"},
    "predictive-latency-learn": {"latency_in_bursts": "learn"},
    "predictive-clumping-capped": {"arrival_clumping": "capped"},
    "predictive-clumping-fixed": {"arrival_clumping": "fixed"},
    "predictive-margin99": {"clumping_margin_attainment": 0.99},
    "predictive-backlog-horizon": {"backlog_growth": "horizon"},
    "predictive-backlog-interval": {"backlog_growth": "interval"},
    "predictive-backlog-release": {"hold_backlog": "release"},
    "predictive-budget-fleet": {"prefill_routing": "larger", "headroom": "error_budget", "headroom_scales": "workers"},
    "predictive-budget-capped": {"prefill_routing": "larger", "headroom": "error_budget", "headroom_scales": "workers",
                                 "burn_cap_per_window": 3.0},
    "predictive-budget-capped2": {"prefill_routing": "larger", "headroom": "error_budget", "headroom_scales": "workers",
                                  "burn_cap_per_window": 2.0},
    "predictive-budget-capped5": {"prefill_routing": "larger", "headroom": "error_budget", "headroom_scales": "workers",
                                  "burn_cap_per_window": 5.0},
    "predictive-larger-headroom": {"prefill_routing": "larger"},
    "predictive-larger-fleet": {"prefill_routing": "larger", "headroom_scales": "workers"},
    "predictive-lru": {"prefix_cache": "lru"},
    "predictive-lru-larger": {"prefix_cache": "lru", "prefill_routing": "larger"},
    "predictive-wait": {"headroom_signal": "wait"},
    "predictive-wait-fleet": {"headroom_signal": "wait", "headroom_scales": "workers"},
    "predictive-wait-larger": {"headroom_signal": "wait", "prefill_routing": "larger"},
    "predictive-wait-larger-fleet": {"headroom_signal": "wait", "prefill_routing": "larger",
                                     "headroom_scales": "workers"},
}


def _factory(name: str, settings: dict):
    def make(ctx: policies.RunContext) -> PredictivePlanner:
        return PredictivePlanner(ctx.profile, policies.planner_config(ctx, **settings), name=name)
    return make


for _name, _settings in VARIANTS.items():
    policies.register_policy(_name, _factory(_name, _settings))
