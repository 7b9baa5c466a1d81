"""Settings of the predictive planner's decision logic (validated; YAML-friendly)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scaler.planner.budget import ErrorBudgetLoop
from scaler.planner.predictors import DEFAULT_TREND_HORIZON_S

BURN_RAISE_ABOVE = ErrorBudgetLoop.raise_above


class PlannerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(500.0, gt=0, description="time-to-first-token target (ms)")
    itl_ms: float = Field(50.0, gt=0, description="inter-token latency target (ms)")
    attainment_target: float = Field(0.99, gt=0, lt=1,
                                     description="share of requests that must meet both the TTFT and the ITL target")
    interval_s: float = Field(5.0, gt=0, le=600, description="seconds between decisions")
    predictor: Literal["last", "ewma", "holt", "seasonal"] = "holt"
    quantile: Literal[0.5, 0.8, 0.9, 0.95, 0.99] = Field(0.9, description="forecast quantile that is provisioned")
    trend_horizon_s: float = Field(DEFAULT_TREND_HORIZON_S, ge=0, description="how far ahead the forecast carries the recent trend "
                                   "(holt, seasonal). A clump of a few seconds reads as a steep trend: carried over a "
                                   "long start-up it asks for more than any load seen, headroom that clumpy traffic "
                                   "may use and smooth traffic wastes (docs/planner.md, 'What holds the Azure windows')")
    peak_window_s: float = Field(600.0, ge=0, description="recent peak that capacity never drops below (with "
                                 "bursts=rises: the history of load the burst headroom is drawn from; 0: none)")
    headroom: Literal["mean_latency", "error_budget"] = Field(
        "mean_latency", description="what scales the profile's capacity: mean latency against comfort x target, or "
        "the error-budget loop on attainment_target (needs SLA counts, which replay provides)")
    headroom_scales: Literal["rate", "workers"] = Field(
        "rate", description="what the prefill headroom multiplies with need_model=tail: 'rate' the load the "
        "model sizes for; 'workers' the fleet it sizes. At light load a fleet's misses come from prompts that "
        "wait behind others on a worker, which a higher rate barely changes in the model's queue "
        "(docs/planner.md, 'Two traces from outside')")
    burn_cap_per_window: float | None = Field(
        None, gt=0, description="headroom=error_budget: the misses of one decision window count at most this many "
        "times what the budget allows (null: every miss counts). Misses in one clump then raise the headroom no more "
        "than a few windows' worth; misses that keep coming, window after window, still do (docs/planner.md, "
        "'Prompts beyond reach met from a cache, and a burn capped per window')")
    bursts: Literal["recent_peak", "rises", "mix"] = Field(
        "mix", description="capacity kept for bursts: the recent peak; the decayed distribution of load "
        "rises within a start-up delay (its quantile); or, with need_model=tail, the decayed distribution of recent "
        "load itself, request by request, sized so that attainment_target is met over it")
    need_model: Literal["tail", "mean"] = Field(
        "tail", description="model of need: 'tail' sizes prefill so the share of requests meeting the TTFT target "
        "reaches attainment_target, from the recent distribution of prompt lengths (M/G/c queueing), and decode KV "
        "for its tail; 'mean' sizes from the mean prompt at a utilisation bound (the earlier model)")
    prefill_routing: Literal["pooled", "round_robin", "larger"] = Field(
        "pooled", description="with need_model=tail, the queue prefill is modelled as: 'pooled' (the next prompt "
        "to a free worker, M/G/c) or 'round_robin' (prompts dealt to workers in turn, as Dynamo's default router "
        "mode does, each worker serving its own queue in order, so a short prompt waits behind a long one on its "
        "worker while others idle); 'larger' sizes for the larger of the two needs, each model at its own "
        "arrival_ca2 default (docs/planner.md, 'A model of round robin')")
    prefix_cache: Literal["ignore", "lru"] = Field(
        "ignore", description="with need_model=tail and each prompt's cached prefix and its age (replay): 'lru' "
        "counts prompts too long for an idle worker but in reach from a cached prefix, met while the prefix is "
        "still cached (a worker's cache, the decode profile's max_kv_tokens, turned over by the tokens prefilled "
        "anew); 'ignore' leaves them out as beyond reach")
    prompt_half_life_s: float = Field(300.0, gt=0, description="half-life of the prompt-length distribution "
                                      "the tail model sizes from")
    mix_forecast_weight: float = Field(0.1, ge=0, le=1, description="bursts=mix: share of requests taken to "
                                       "arrive at the forecast load, beside the recent history")
    arrival_ca2: float | None = Field(None, ge=0, description="tail model: squared coefficient of variation of the "
                                      "gaps between arrivals within a decision interval (1: Poisson; more: clumped "
                                      "arrivals); default: as calibrated for prefill_routing against the replay "
                                      "engine (round_robin 2, pooled 9; docs/planner.md)")
    arrival_clumping: Literal["fixed", "measured", "above_fixed", "capped"] = Field(
        "capped", description="with need_model=tail: 'fixed' sizes with arrival_ca2 (or its default); 'measured' "
        "estimates it each decision from the request counts of adjacent windows, between 1 and arrival_ca2 (or its "
        "default), which holds until a minute of windows has been seen (scaler/planner/clumping.py); 'above_fixed' "
        "takes the same estimate only where it is above arrival_ca2 (or its default), up to arrival_ca2_max; "
        "'capped' sizes as 'fixed', but with at most clumping_margin_workers prefill workers more than 'measured' "
        "would (docs/planner.md, 'The clumping margin capped')")
    clumping_margin_workers: float = Field(1.0, ge=0, le=64, description="arrival_clumping=capped: the most prefill "
                                           "workers the fixed clumping may keep beyond the need at the measured one")
    clumping_margin_attainment: float | None = Field(
        None, gt=0, lt=1, description="arrival_clumping=capped: the attainment the fixed clumping's need is sized for "
        "where it is stricter than attainment_target (default: attainment_target), so that the margin that carries a "
        "jump at light load is kept whatever the target (docs/planner.md, 'A margin whatever the target')")
    arrival_ca2_max: float = Field(30.0, ge=1, description="arrival_clumping=above_fixed: the most clumping the "
                                   "estimate may size for")
    spare_prefill_workers: float = Field(0.0, ge=0, le=64, description="prefill workers kept beyond the need: "
                                         "the room an unforeseen rise or a lost worker finds while new workers "
                                         "start (docs/planner.md, 'Clumping measured from counts, and a spare "
                                         "worker')")
    burst_half_life_s: float = Field(150.0, gt=0, description="half-life of the load history the burst headroom "
                                     "is drawn from (bursts=rises or mix)")
    floor: Literal["none", "steady"] = Field(
        "none", description="with need_model=tail, 'steady' holds prefill at the fleet that meets attainment_target "
        "over the recent load (half-life floor_half_life_s) while the mean load of the last start-up stays within "
        "it, and follows the need only once it does not (scaler/planner/floor.py): clumps shorter than a start-up "
        "are not chased")
    floor_half_life_s: float = Field(1800.0, gt=0, description="floor=steady: half-life of the load history")
    floor_history_s: float = Field(3600.0, gt=0, description="floor=steady: how much load history is kept")
    floor_attainment: float | None = Field(None, gt=0, lt=1, description="floor=steady: the attainment the floor "
                                           "is sized for over the recent load (default attainment_target)")
    floor_arrival_ca2: float | None = Field(None, ge=0, description="floor=steady: arrival_ca2 the floor is sized "
                                            "with (default arrival_ca2)")
    floor_min_startup_s: float = Field(10.0, ge=0, description="floor=steady: applied only while workers take at "
                                       "least this long to start (faster ones catch a clump while it lasts)")
    profile_fit: Literal["missing", "online"] = Field(
        "missing", description="where sizing's performance profile comes from: 'missing' uses the given profile and "
        "fits one online only when none is given; 'online' always fits online and ignores a given profile. While the "
        "fit is not yet trusted the planner sizes from the load path alone (queues, KV usage) "
        "(scaler/planner/online_fit.py). The live planner given no profile_file fits online (profile_source "
        "online-fit); profile_file: bundled asks for the mocker's profile")
    startup_s: float = Field(60.0, ge=0, description="prior for worker start-up time; refined from observation")
    scale_down_hold_s: float = Field(300.0, ge=0, description="a lower need must last this long before removing")
    hold_backlog: Literal["hold", "release"] = Field(
        "hold", description="what the scale-down hold keeps: 'hold' the highest need of the last scale_down_hold_s, "
        "the queues' included; 'release' the same without the workers asked only to drain a queue (the prefill "
        "backlog, the decode KV waiting), which go once it drains (sized from a profile or a trusted fit)")
    scale_down_step: float = Field(0.25, gt=0, le=1, description="at most this fraction removed per decision")
    min_prefill: int = Field(1, ge=0)
    max_prefill: int = Field(64, ge=1)
    min_decode: int = Field(1, ge=0)
    max_decode: int = Field(64, ge=1)
    gpu_budget: int | None = Field(None, ge=1, description="GPUs for both pools together")
    backlog_horizon_s: float = Field(30.0, gt=0, description="queued prompt tokens are planned to clear within this time")
    backlog_growth: Literal["interval", "horizon"] = Field(
        "horizon", description="the arrival rate the load path expects through a start-up, for the prefill backlog "
        "new workers will find: 'interval' the last window's; 'horizon' the lower of that and the mean over the "
        "last backlog_horizon_s (a clump of seconds is not read as arriving for the whole start-up)")
    comfort: float = Field(0.5, gt=0, le=1, description="mean latency above this share of the target raises "
                           "capacity (headroom=mean_latency, or without SLA counts)")
    headroom_signal: Literal["ttft", "wait"] = Field(
        "ttft", description="headroom=mean_latency, prefill: 'ttft' reads the mean TTFT against comfort x target; "
        "'wait' the mean wait, the mean TTFT less the idle TTFT of the window's prompts by the profile, against "
        "the mean wait at which exponential waits would leave attainment_target of the prompts in reach within "
        "their slack (target less idle TTFT). Long prompts fill the comfort zone with their own prefill, so "
        "on them 'ttft' sits at max_correction whatever the fleet (docs/planner.md, 'The wait signal')")
    latency_in_bursts: Literal["learn", "skip"] = Field(
        "skip", description="headroom=mean_latency: 'skip' learns no prefill headroom from a window whose prompt "
        "load is above what the running fleet serves in time by the profile, nor while the backlog it leaves drains "
        "(a burst faster than workers start, not a short model); 'learn' reads every window")
    max_correction: float = Field(2.0, ge=1, description="upper bound of the capacity headroom factors (where the "
                                  "error-budget loop stops raising)")
    kv_headroom: float = Field(0.8, gt=0, le=1, description="decode KV usage planned for (and share of "
                               "decode_max_seqs)")
    decode_max_seqs: int | None = Field(256, ge=1, description="sequences a decode worker runs at once (set it "
                                        "to the engine's max_num_seqs; 256 is the replay mocker's default): "
                                        "a pool running that many per worker is full whatever its KV usage; "
                                        "null: KV usage only")
    unschedulable_after_s: float = Field(60.0, ge=0, description="a pool whose pods stay Pending unschedulable "
                                         "(no room in the cluster) this long is not raised further until they "
                                         "are placed (condition InsufficientCapacity)")

    def effective_arrival_ca2(self, routing: str | None = None) -> float:
        """arrival_ca2, or the default of a prefill model (`routing`, default prefill_routing's)."""
        if self.arrival_ca2 is not None:
            return self.arrival_ca2
        return 2.0 if (routing or self.prefill_routing) == "round_robin" else 9.0

    @model_validator(mode="after")
    def _bounds(self) -> "PlannerConfig":
        if self.min_prefill > self.max_prefill:
            raise ValueError("min_prefill must be <= max_prefill")
        if self.min_decode > self.max_decode:
            raise ValueError("min_decode must be <= max_decode")
        if self.floor != "none" and self.need_model != "tail":
            raise ValueError("floor=steady needs need_model=tail")
        if self.arrival_clumping == "above_fixed" and self.effective_arrival_ca2() > self.arrival_ca2_max:
            raise ValueError("arrival_ca2_max must be >= arrival_ca2 (or its default) "
                             "with arrival_clumping=above_fixed")
        if self.burn_cap_per_window is not None and self.burn_cap_per_window <= BURN_RAISE_ABOVE:
            raise ValueError(f"burn_cap_per_window must be above {BURN_RAISE_ABOVE:g}, the burn at which the "
                             "error-budget loop raises the headroom, or it could never raise it")
        if self.gpu_budget is not None and self.gpu_budget < self.min_prefill + self.min_decode:
            raise ValueError("gpu_budget is below min_prefill + min_decode")
        return self
