"""The predictive SLA planner as a Policy: the same object runs live and in replay.

Each decision runs three stages (`decide`):
- forecast: take in the window (rate, lengths, start-ups, SLA misses) and forecast the load once a
  worker started now would be ready (measured start-up time + one interval), at the chosen
  quantile, with the loads the burst headroom keeps capacity for;
- need: capacity for that load, never below the burst headroom, and never below what the queues
  say is missing right now (the load path, scaler/planner/sizing.py);
- constrain: round, bound, hold back scale-downs and fit the GPU budget
  (scaler/planner/constraints.py), and say why.

Model of need (`need_model="tail"`, scaler/planner/tail.py, shared with the replay oracle):
prefill workers such that the share of requests meeting the TTFT target reaches
`attainment_target`, from the recent distribution of prompt lengths (fed through
`observe_prompts`: in replay each arriving prompt, live the frontend's ISL histogram; without it
the mean prompt), and decode capacity for the tail of the KV held in flight.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from dataclasses import dataclass, field, replace

from scaler.planner import predictors, tail
from scaler.planner.budget import ErrorBudgetLoop
from scaler.planner.clumping import ClumpingEstimate
from scaler.planner.bursts import BurstHeadroom
from scaler.planner.config import PlannerConfig
from scaler.planner.floor import FloorDecision, SteadyFloor, apply_floor, whole
from scaler.planner.constraints import DownHold, constrain
from scaler.planner.online_fit import FitStatus, OnlineFit
from scaler.planner.sizing import (Load, decode_now, decode_replicas, fleet_with_headroom, prefill_now,
                                   prefill_replicas, prefill_utilization)
from scaler.planner.startup import StartupTracker
from scaler.policy import Decision, Diagnostics, Observation, TrafficWindow
from scaler.profile import PerformanceProfile


@dataclass
class _Smoothed:
    alpha: float
    value: float | None = None

    def update(self, v: float | None) -> float | None:
        if v is None or not math.isfinite(v):
            return self.value
        self.value = v if self.value is None else self.value + self.alpha * (v - self.value)
        return self.value


@dataclass(frozen=True)
class Forecast:
    """The forecast stage's answer: the load to plan for and what it was derived from."""

    rate_now: float   # requests/s observed in the window
    rate: float       # forecast requests/s at the horizon, at the chosen quantile
    isl: float        # smoothed mean prompt tokens
    osl: float        # smoothed mean output tokens
    mix: tail.PromptMix | None  # recent distribution of prompt lengths, when known
    startup_s: float  # slower pool's measured start-up time
    horizon_s: float  # start-up + one interval
    burst_window_s: float
    burst_rate: float          # requests/s the decode headroom keeps capacity for
    burst_prefill_rate: float  # requests/s (at the mean prompt) the prefill headroom keeps capacity for
    level: float | None = None  # median forecast: the "mix" headroom sizes prefill for it
    factors: tuple[np.ndarray, np.ndarray] | None = None  # "mix": recent loads and their weights
    growth_rate: float | None = None  # requests/s the load path expects through a start-up (None: rate_now)


@dataclass(frozen=True)
class Need:
    """The need stage's answer: fractional workers per pool, and the parts the reason names."""

    prefill: float
    decode: float
    prefill_burst: float  # added over the forecast alone by the burst headroom
    decode_burst: float
    backlog: float        # prefill workers the load path adds for the queue
    floor: FloorDecision | None = None  # floor=steady: what the steady floor did to the prefill need
    spare: float = 0.0    # spare prefill workers included in `prefill`
    lasting: tuple[float, float] | None = None  # (prefill, decode) without the workers that drain a queue


@dataclass
class PredictivePlanner:
    # None: fit one online from the observations (scaler/planner/online_fit.py; config profile_fit)
    profile: PerformanceProfile | None
    config: PlannerConfig = field(default_factory=PlannerConfig)
    name: str = "predictive"

    def __post_init__(self) -> None:
        c = self.config
        self.fit = OnlineFit() if self.profile is None or c.profile_fit == "online" else None
        self.fit_status: FitStatus | None = None
        if self.fit is not None:
            self.profile = None  # nothing sizes from a profile until the fit is trusted
        self.rate = predictors.make(c.predictor, trend_horizon_s=c.trend_horizon_s)
        self.peak = predictors.RecentPeak(window_s=c.peak_window_s)
        self.burst_tokens = BurstHeadroom(half_life_s=c.burst_half_life_s, history_s=c.peak_window_s)
        self.burst_rate = BurstHeadroom(half_life_s=c.burst_half_life_s, history_s=c.peak_window_s)
        # requests/s over the last backlog horizon (only its mean is read)
        self.recent_rate = BurstHeadroom(history_s=c.backlog_horizon_s + c.interval_s)
        self.prefill_budget = ErrorBudgetLoop(target=c.attainment_target, hi=c.max_correction,
                                              window_cap=c.burn_cap_per_window)
        self.decode_budget = ErrorBudgetLoop(target=c.attainment_target, hi=c.max_correction,
                                             window_cap=c.burn_cap_per_window)
        self.isl = _Smoothed(0.3)
        self.osl = _Smoothed(0.3)
        self.prefill_start = StartupTracker(c.startup_s)
        self.decode_start = StartupTracker(c.startup_s)
        self.prefill_hold = DownHold(c.scale_down_hold_s, c.scale_down_step)
        self.decode_hold = DownHold(c.scale_down_hold_s, c.scale_down_step)
        self.last_now: float | None = None
        self.prefill_correction = 1.0
        self.decode_correction = 1.0
        self.surprise_until = -math.inf
        cache = self.profile.decode.max_kv_tokens if c.prefix_cache == "lru" and self.profile is not None else 0.0
        self.prompts = tail.PromptHistory(half_life_s=c.prompt_half_life_s, cache_tokens=cache)
        self._pending: list[float] = []
        self._pending_mix: tail.PromptMix | None = None
        self._pending_count = 0.0
        self._pending_uncached: float | None = None
        self._pending_ages: list[float] = []
        self._fed = False  # prompt lengths come through observe_prompts
        self.clumping = ClumpingEstimate() if c.arrival_clumping != "fixed" else None
        self.steady = (SteadyFloor(c.floor_half_life_s, c.floor_history_s, c.floor_min_startup_s)
                       if c.floor == "steady" else None)

    def observe_prompts(self, lengths, reuse=None) -> None:
        """Prompt lengths that arrived since the last decision (replay: each request's), and of
        each the tokens an earlier request already had and how many seconds before
        (dynamo_scaling.traces.prefix_reuse: its prefix may still be in a worker's cache)."""
        self._fed = True
        lengths = [float(x) for x in lengths]
        self._pending.extend(lengths)
        if reuse is not None and self.prompts.cache_tokens > 0:
            self._observe_reuse(lengths, reuse)

    def _observe_reuse(self, lengths: list[float], reuse) -> None:
        ttft, idle = self.config.ttft_ms, self.profile.prefill.ttft_ms_at
        fresh = 0.0
        for x, (cached, age) in zip(lengths, reuse):
            left = max(1.0, x - float(cached))
            fresh += left
            if age is not None and idle(x) > ttft and idle(left) <= ttft:  # in reach only from the cache
                self._pending_ages.append(float(age))
        self._pending_uncached = (self._pending_uncached or 0.0) + fresh

    def observe_prompt_histogram(self, buckets) -> None:
        """Live: the increase of the frontend's ISL histogram since the last decision."""
        mix = tail.PromptMix.from_histogram(buckets)
        if mix is not None:
            self._fed = True
            self._pending_mix = mix
            self._pending_count = float(max(buckets.values()))

    def _update_prompts(self, obs: Observation, dt: float) -> tail.PromptMix | None:
        if self._fed:
            mix = tail.PromptMix.from_lengths(self._pending) if self._pending else self._pending_mix
            n = len(self._pending) if self._pending else self._pending_count
            uncached, ages = self._pending_uncached, self._pending_ages
            self._pending, self._pending_mix, self._pending_count = [], None, 0.0
            self._pending_uncached, self._pending_ages = None, []
        else:  # only the window's mean is known
            t = obs.traffic
            mix = tail.PromptMix.point(t.avg_isl) if t.avg_isl else None
            n, uncached, ages = t.num_requests, None, []
        self.prompts.add(mix, n, dt, uncached, ages)
        return self.prompts.mix()

    def _prefill(self, rate: float, isl: float, osl: float, mix: tail.PromptMix | None, factors=None,
                 attainment: float | None = None, ca2: float | None = None) -> float:
        c, p = self.config, self.profile
        if c.need_model == "tail" and rate > 0:
            m = mix if mix is not None else tail.PromptMix.point(isl)
            models = ("pooled", "round_robin") if c.prefill_routing == "larger" else (c.prefill_routing,)

            target = attainment or c.attainment_target

            on_rate = self.prefill_correction if c.headroom_scales == "rate" else 1.0
            on_fleet = self.prefill_correction / on_rate

            def need(clumping: Callable[[str], float], at: float) -> float:
                return fleet_with_headroom(max(tail.prefill_workers(rate * on_rate, m, p, c.ttft_ms, at,
                                                                    ca2=clumping(model) if ca2 is None else ca2,
                                                                    bursts=factors, routing=model)
                                               for model in models), on_fleet)
            if c.arrival_clumping != "capped" or ca2 is not None:
                return need(self.arrival_ca2, target)
            # the fixed clumping's margin is room for a step at low load (one worker or so); on a
            # fleet of many it sizes for clumps the counts say never come
            margin_at = target
            if attainment is None and c.clumping_margin_attainment is not None:
                margin_at = max(target, c.clumping_margin_attainment)
            return min(need(self.arrival_ca2, margin_at), need(self.measured_ca2, target) + c.clumping_margin_workers)
        return prefill_replicas(Load(rate, isl, osl), p, c.ttft_ms, correction=self.prefill_correction)

    def measured_ca2(self, routing: str | None = None) -> float:
        """The clumping measured from recent counts, between 1 and the fixed one (which holds until
        measured)."""
        fixed = self.config.effective_arrival_ca2(routing)
        return fixed if self.clumping is None else self.clumping.value(1.0, max(1.0, fixed))

    def arrival_ca2(self, routing: str | None = None) -> float:
        """The clumping the tail model sizes with: arrival_ca2 (or the routing's default), which
        arrival_clumping=capped also sizes with before its cap (`_prefill`); with measured the
        estimate from recent counts, at most that; with above_fixed the estimate, at least that and
        at most arrival_ca2_max."""
        fixed = self.config.effective_arrival_ca2(routing)
        if self.clumping is None or self.config.arrival_clumping == "capped":
            return fixed
        if self.config.arrival_clumping == "above_fixed":
            return self.clumping.value(fixed, max(fixed, self.config.arrival_ca2_max), prior=fixed)
        return self.measured_ca2(routing)

    def _decode(self, rate: float, isl: float, osl: float, mix: tail.PromptMix | None) -> float:
        c, p = self.config, self.profile
        need = decode_replicas(Load(rate, isl, osl), p, c.itl_ms, correction=self.decode_correction,
                               kv_headroom=c.kv_headroom)
        if c.need_model == "tail" and rate > 0 and mix is not None:
            itl_s = p.decode.itl_ms_at(0.5, isl + osl / 2) / 1000.0 * self.decode_correction
            need = max(need, tail.decode_kv_workers(rate, mix.isl, np.full(mix.isl.size, osl), mix.weight, itl_s,
                                                    p.decode.max_kv_tokens, c.kv_headroom, c.attainment_target))
        return need

    def _learn_from_budget(self, obs: Observation, settle_s: float, isl: float) -> None:
        """Misses against the error budget set the headroom: TTFT misses that capacity can help
        (not prompts too long for any worker) for prefill, ITL misses for decode.

        Only misses under load the running fleet was sized for say the model of need is short;
        misses while load exceeds it (and while the backlog that leaves drains) are a burst
        arriving faster than workers start, which more headroom on the forecast would not catch
        in time: those are the burst headroom's part, and here they are left out."""
        slo, now = obs.traffic.slo, obs.now_s
        assert slo is not None
        if self._surprised(obs, isl, corrected=True):
            self.prefill_correction = self.prefill_budget.update(now, 0, 0, settle_s)
        else:
            self.prefill_correction = self.prefill_budget.update(now, slo.measured, slo.ttft_missed, settle_s,
                                                                 excluded=slo.unreachable)
        self.decode_correction = self.decode_budget.update(now, slo.measured, slo.itl_missed, settle_s)

    def _surprised(self, obs: Observation, isl: float, corrected: bool) -> bool:
        """Whether the window's prompt load is above what the running prefill fleet was sized for,
        now or within the backlog horizon since it last was: a burst arriving faster than workers
        start. `corrected`: the fleet's capacity by the profile over the headroom (what the error-
        budget loop sized for); otherwise by the profile alone, so that a headroom learned to make up
        for an optimistic profile does not itself read as surprise."""
        c, p, now = self.config, self.profile, obs.now_s
        assert p is not None
        per_prefill = p.prefill.throughput_per_gpu_at(isl) * p.gpus_per_prefill_worker
        planned = obs.prefill.active * per_prefill * prefill_utilization(p, isl, c.ttft_ms)
        if corrected:
            planned /= max(self.prefill_correction, 1e-9)
        if obs.traffic.request_rate * (obs.traffic.avg_isl or isl) > planned:
            self.surprise_until = now + c.backlog_horizon_s
        return now < self.surprise_until

    def _learn_corrections(self, obs: Observation, isl: float, mix: tail.PromptMix | None) -> None:
        """Without SLA counts: observed mean latency against the target's comfort zone scales the
        profile's capacity, bounded to [1, max] and smoothed, so a noisy window cannot swing the fleet.
        With `latency_in_bursts: skip`, prefill learns nothing from a burst the running fleet was not
        sized for: its latency says the load was a surprise, not that the model of need is short."""
        c, t = self.config, obs.traffic
        skip = (c.latency_in_bursts == "skip" and self.profile is not None
                and self._surprised(obs, isl, corrected=False))
        ratio = self._prefill_latency_ratio(t, isl, mix) if not skip else None
        if ratio is not None:
            target = min(c.max_correction, max(1.0, self.prefill_correction * ratio ** 0.5))
            self.prefill_correction += 0.3 * (target - self.prefill_correction)
        if t.avg_itl_ms is not None:
            ratio = t.avg_itl_ms / (c.itl_ms * c.comfort)
            target = min(c.max_correction, max(1.0, self.decode_correction * ratio ** 0.5))
            self.decode_correction += 0.3 * (target - self.decode_correction)

    def _prefill_latency_ratio(self, t: TrafficWindow, isl: float, mix: tail.PromptMix | None) -> float | None:
        """How far the window's first tokens are from comfortable: above 1 raises the headroom.
        `wait`: the mean wait over the one at which exponential waits (the tail model's form, every
        prompt waiting) leave `attainment_target` of the prompts in reach within their slack
        (`tail.mean_wait_ratio`)."""
        c = self.config
        if t.avg_ttft_ms is None:
            return None
        if c.headroom_signal == "ttft" or self.profile is None:
            return t.avg_ttft_ms / (c.ttft_ms * c.comfort)
        m = mix if mix is not None else tail.PromptMix.point(t.avg_isl or isl)
        # None: no fleet brings these prompts in, so nothing to learn
        return tail.mean_wait_ratio(t.avg_ttft_ms, m, self.profile, c.ttft_ms, c.attainment_target)

    @property
    def slo_probe_s(self) -> float | None:
        """How finely replay counts SLA misses between decisions (see scaler.replay.engine); only
        the error-budget loop reads them, so the default settings leave the replay as it was."""
        return 0.1 if self.config.headroom == "error_budget" else None

    def initial_tick_s(self) -> float:
        return self.config.interval_s

    def decide(self, obs: Observation) -> Decision:
        if self.fit is not None:
            self.fit_status = self.fit.observe(obs)
            # refitted every decision once trusted; until then only the load path sizes
            self.profile = self.fit.profile() if self.fit_status.trusted else None
        forecast = self._forecast(obs)
        need = self._need(obs, forecast) if self.profile is not None else self._load_path(obs, forecast)
        spare = self.config.spare_prefill_workers
        if spare > 0 and need.prefill > 0:
            lasting = None if need.lasting is None else (need.lasting[0] + spare, need.lasting[1])
            need = replace(need, prefill=need.prefill + spare, spare=spare, lasting=lasting)
        return self._constrain(obs, forecast, need)

    def _load_path(self, obs: Observation, f: Forecast) -> Need:
        """No trusted profile yet: what the queues and the KV say is missing now (the load path of
        scaler/planner/sizing.py) with the fit's throughput and KV capacity so far; with no
        throughput known at all, the prefill fleet is held."""
        c, st = self.config, self.fit_status
        assert st is not None
        if st.prefill_throughput is None:
            pre = float(obs.prefill.non_draining)
        else:
            pre = prefill_now(f.rate_now, f.isl, obs.prefill, st.prefill_throughput, self.prefill_start.estimate_s,
                              c.backlog_horizon_s, f.growth_rate).workers
        return Need(pre, decode_now(obs.decode, st.kv_capacity, c.kv_headroom, c.decode_max_seqs), 0.0, 0.0, 0.0)

    def _forecast(self, obs: Observation) -> Forecast:
        """Take in the window, learn the headroom, and forecast the load at the horizon together
        with the loads the burst headroom keeps capacity for."""
        c = self.config
        dt = obs.now_s - self.last_now if self.last_now is not None else obs.traffic.duration_s or c.interval_s
        self.last_now = obs.now_s
        rate_now = obs.traffic.request_rate
        self.rate.update(rate_now, dt)
        self.recent_rate.update(rate_now, dt)
        growth_rate = (min(rate_now, self.recent_rate.mean(c.backlog_horizon_s))
                       if c.backlog_growth == "horizon" else None)
        if self.clumping is not None:
            self.clumping.observe(obs.now_s, obs.traffic.duration_s, obs.traffic.num_requests)
        isl = self.isl.update(obs.traffic.avg_isl) or 1.0
        mix = self._update_prompts(obs, dt)
        osl = self.osl.update(obs.traffic.avg_osl) or 1.0
        if c.bursts in ("rises", "mix"):
            self.burst_tokens.update(rate_now * (obs.traffic.avg_isl or isl), dt)
            self.burst_rate.update(rate_now, dt)
        else:
            self.peak.update(rate_now, dt)
        if self.steady is not None:
            self.steady.update(rate_now, dt)
        self.prefill_start.observe(obs.now_s, obs.prefill.active, obs.prefill.starting)
        self.decode_start.observe(obs.now_s, obs.decode.active, obs.decode.starting)

        startup = max(self.prefill_start.estimate_s, self.decode_start.estimate_s)
        horizon = startup + c.interval_s
        if c.headroom == "error_budget" and obs.traffic.slo is not None and self.profile is not None:
            self._learn_from_budget(obs, horizon, isl)
        else:
            self._learn_corrections(obs, isl, mix)
        rate_f = self.rate.upper(horizon, c.quantile)
        # burst headroom: the recent peak, or the rises of load within a start-up delay
        burst_len = max(startup, c.interval_s) if c.bursts in ("rises", "mix") else c.peak_window_s
        level, factors = None, None
        if c.bursts == "mix" and c.need_model == "tail":
            # the fleet that would have served the recent load, burst by burst, at the target
            history = self.burst_rate.distribution() if c.peak_window_s > 0 else None
            level = self.rate.upper(horizon, 0.5)
            if history is not None:  # absolute loads, sized at unit rate in the need stage
                rates, weights = history
                factors = (np.append(rates, level), np.append(weights * (1 - c.mix_forecast_weight),
                                                              c.mix_forecast_weight))
            burst_rate = max(rate_f, self.burst_rate.mean(burst_len))
            burst_prefill_rate = level
        elif c.bursts in ("rises", "mix"):
            burst_rate = self.burst_rate.level(burst_len) if c.peak_window_s > 0 else 0.0
            burst_prefill_rate = self.burst_tokens.level(burst_len) / isl if c.peak_window_s > 0 else 0.0
        else:
            burst_rate = burst_prefill_rate = self.peak.forecast(horizon)
        return Forecast(rate_now, rate_f, isl, osl, mix, startup, horizon, burst_len, burst_rate,
                        burst_prefill_rate, level, factors, growth_rate)

    def _need(self, obs: Observation, f: Forecast) -> Need:
        """Throughput path: capacity for the forecast load, never below the burst headroom; load
        path: never below what the queues say is missing now."""
        c, p = self.config, self.profile
        dec_base = self._decode(f.rate, f.isl, f.osl, f.mix)
        if f.factors is not None:
            pre_base = self._prefill(f.level, f.isl, f.osl, f.mix)
            pre_need = self._prefill(1.0, f.isl, f.osl, f.mix, f.factors)
        else:
            pre_base = self._prefill(f.rate, f.isl, f.osl, f.mix)
            pre_need = self._prefill(max(f.rate, f.burst_prefill_rate), f.isl, f.osl, f.mix)
        dec_need = self._decode(max(f.rate, f.burst_rate), f.isl, f.osl, f.mix)
        per_prefill = p.prefill.throughput_per_gpu_at(f.isl) * p.gpus_per_prefill_worker
        now = prefill_now(f.rate_now, f.isl, obs.prefill, per_prefill, self.prefill_start.estimate_s,
                          c.backlog_horizon_s, f.growth_rate)
        dec_now = decode_now(obs.decode, p.decode.max_kv_tokens, c.kv_headroom, c.decode_max_seqs)
        pre, floor = max(pre_need, now.workers), None
        # what the hold remembers with hold_backlog=release: the need without the queues' workers
        pre_lasting = max(pre_need, now.workers - now.backlog)
        if (self.steady is not None and self.steady.active(f.startup_s)
                and (history := self.steady.distribution()) is not None):
            # the fleet for the recent load as a whole, held while load only clumps (scaler/planner/floor.py)
            sustained = whole(self._prefill(self.steady.sustained_rate(f.startup_s), f.isl, f.osl, f.mix))
            floor_need = whole(self._prefill(1.0, f.isl, f.osl, f.mix, history, c.floor_attainment,
                                             c.floor_arrival_ca2))
            floor = apply_floor(pre, floor_need, sustained)
            pre, pre_lasting = floor.workers, apply_floor(pre_lasting, floor_need, sustained).workers
        lasting = None
        if c.hold_backlog == "release":
            drained = replace(obs.decode, queued_tokens=0, queued_requests=0)
            lasting = (pre_lasting, max(dec_need, decode_now(drained, p.decode.max_kv_tokens, c.kv_headroom,
                                                            c.decode_max_seqs)))
        return Need(pre, max(dec_need, dec_now), pre_need - pre_base, dec_need - dec_base, now.backlog, floor,
                    lasting=lasting)

    def _constrain(self, obs: Observation, f: Forecast, need: Need) -> Decision:
        """Round, bound, hold back scale-downs and fit the GPU budget; say why."""
        c, p = self.config, self.profile
        gpus = ((p.gpus_per_prefill_worker, p.gpus_per_decode_worker) if p is not None
                else (obs.gpus_per_prefill_worker, obs.gpus_per_decode_worker))
        pre, dec, limited = constrain(obs.now_s, need.prefill, need.decode, obs.prefill.non_draining,
                                      obs.decode.non_draining, c, gpus[0], gpus[1], self.prefill_hold, self.decode_hold,
                                      need.lasting)
        reason = (f"forecast {f.rate:.2f} req/s (now {f.rate_now:.2f}) at +{f.horizon_s:.0f}s, ISL {f.isl:.0f}, "
                  f"OSL {f.osl:.0f}: prefill {need.prefill:.2f} -> {pre}, decode {need.decode:.2f} -> {dec}; "
                  f"headroom x{self.prefill_correction:.2f}/x{self.decode_correction:.2f}")
        if need.prefill_burst > 0.005 or need.decode_burst > 0.005:
            how = {"rises": f"rises over {f.burst_window_s:.0f}s",
                   "mix": f"recent load, half-life {c.burst_half_life_s:.0f}s"}.get(
                c.bursts, f"peak of {f.burst_window_s:.0f}s")
            reason += (f"; kept for bursts ({how}): {need.prefill_burst:.2f} prefill, {need.decode_burst:.2f} decode "
                       f"({f.burst_prefill_rate * f.isl:.0f} prompt tok/s, {f.burst_rate:.2f} req/s)")
        if need.spare > 0:
            reason += f"; {need.spare:g} spare prefill"
        if self.clumping is not None:
            reason += f"; arrival clumping {self.arrival_ca2():.1f} ({self.clumping.measured} window pairs)"
            if c.arrival_clumping == "capped":
                reason += (f", prefill at most {c.clumping_margin_workers:g} above the measured clumping "
                           f"{self.measured_ca2():.1f}")
        if need.backlog > 0.05:
            reason += f"; prefill backlog {obs.prefill.queued_tokens} tokens"
        if need.floor is not None:
            reason += (f"; {'held at' if need.floor.held else 'above'} the steady floor {need.floor.floor:.2f} prefill "
                       f"(recent load, half-life {c.floor_half_life_s:.0f}s; load of the last {f.startup_s:.0f}s needs "
                       f"{need.floor.sustained:.2f})")
        if limited:
            reason += f"; limited by GPU budget {c.gpu_budget}"
        st = self.fit_status
        if st is not None:
            reason += f"; {st.describe()}"
        details = Diagnostics(
            forecast_rate=f.rate, rate=f.rate_now, horizon_s=f.horizon_s,
            prefill_need=need.prefill, decode_need=need.decode,
            prefill_correction=self.prefill_correction, decode_correction=self.decode_correction,
            startup_estimate_s=f.startup_s, burst_window_s=f.burst_window_s, burst_rate=f.burst_rate,
            burst_prefill_tokens_s=f.burst_prefill_rate * f.isl,
            burst_prefill_workers=need.prefill_burst, burst_decode_workers=need.decode_burst,
            # absent until enough requests were measured
            prefill_burn=self.prefill_budget.last_burn, decode_burn=self.decode_budget.last_burn,
            budget_limited=limited,
            floor_prefill_workers=need.floor.floor if need.floor is not None else None,
            floor_sustained_workers=need.floor.sustained if need.floor is not None else None,
            floor_held=float(need.floor.held) if need.floor is not None else None,
            fit_windows=float(st.windows) if st is not None else None,
            fit_trusted=float(st.trusted) if st is not None else None,
        )
        return Decision(pre, dec, c.interval_s, reason, details)
