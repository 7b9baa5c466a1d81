"""A performance profile fitted online from the planner's own observations, for a planner started
without one. Pure: it only reads `Observation`s.

Model (one worker; every coefficient bounded, every sample weighted by its age with half-life
`half_life_s`):

- prefill, idle TTFT: ``ttft_ms = a + b * isl`` with a >= 0 and b >= `min_slope`, from windows
  where the prefill pool has no queue at either end and takes in at most `idle_load` of what its
  workers serve. The window's mean TTFT is taken at its mean ISL (exact for a linear cost).
  Arrivals clump within a window, so some "idle" windows still queue: TTFT is then only ever
  higher, and the fit drops the points far above the line (relative residual beyond
  `trim` x their median) before it is refitted.
- prefill, throughput per worker: tokens served per second per active worker in windows where the
  pool is saturated (queued prompts at both ends of the window, the same active workers):
  arrived tokens less the growth of the tokens queued and in flight, summed over those windows and
  divided by their worker-seconds (weighted by age), within [`min_throughput`, `max_throughput`].
  Until `min_saturated` such windows were seen, `slope_share` x 1000 / b: a share of the speed at
  which an idle worker takes one more prompt token. A saturated worker runs no faster than that on
  long prompts, and can run slower: on Dynamo's mocker 1000 / b is 5-15 % above its saturated
  48k tokens/s (more at short prompts, where the TTFT curve is flatter), hence the share; a planner
  that keeps its queues short sees few saturated windows, so this estimate is the common one.
- decode, ITL: ``itl_ms = c0 + c1 * kv_usage + c2 * context / 1000`` with c0, c1, c2 >= 0 (KV
  usage as the workers report it, context = ISL + OSL / 2), same trimming; throughput per worker
  follows from it: requests held (kv_usage x capacity / context) x 1000 / ITL tokens/s.
- decode, KV capacity per worker: the decayed sum of tokens held over the decayed sum of KV usage
  x active workers. Each window's two readings are scraped at different instants, so a window
  holding a few requests can be off by one of them (a third at three); summing weighs each
  window by the KV it holds, where that miscount is a small share. Readings beyond twice or half
  the median ratio are left out, and so are windows with a decode queue (the tokens counted include
  requests not admitted yet).

Confidence and trust (thresholds are the fields of `FitSettings`): the prefill side is trusted with
at least `min_prefill_windows` kept TTFT windows whose ISL spans a factor `min_isl_spread` and whose
relative RMS residual is at most `max_residual`; the decode side with `min_decode_windows` kept ITL
windows within `max_residual`, KV usage spanning `min_kv_spread`, and `min_capacity_windows`
capacity readings. The fit is trusted once both sides are, and stays trusted (idle periods must
not flip a planner back) unless a side's residual exceeds twice the bound. The planner sizes from
the load path alone until then.

Assumptions: one prompt's cost is linear in its length; ITL is linear in KV usage and context;
every worker of a pool is alike; what the workers report as KV usage is a share of the capacity
the tokens they hold fill.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from scaler.policy import Observation
from scaler.profile import PerformanceProfile

PREFILL_ISL = (128.0, 256.0, 512.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0, 128000.0)
DECODE_CONTEXT = (500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0, 128000.0)
DECODE_KV = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class FitSettings:
    half_life_s: float = 1800.0      # age weighting of every sample
    history: int = 400               # samples kept per curve
    idle_load: float = 0.5           # a TTFT window counts as idle below this share of the pool's throughput
    trim: float = 3.0                # points above the line by more than this x the median residual are dropped
    min_slope: float = 1e-6          # ms per prompt token
    min_throughput: float = 100.0    # prompt tokens/s per worker
    max_throughput: float = 1e7
    min_saturated: int = 3
    slope_share: float = 0.9         # of 1000 / b taken as the throughput until saturated windows measure it
    min_capacity: float = 1e3        # KV tokens per worker
    max_capacity: float = 1e10
    min_prefill_windows: int = 12
    min_isl_spread: float = 1.3      # largest / smallest ISL among the kept TTFT windows
    min_decode_windows: int = 12
    min_kv_spread: float = 0.01      # largest - smallest KV usage among the kept ITL windows
    min_capacity_windows: int = 3
    max_residual: float = 0.25       # relative RMS residual of a trusted curve


@dataclass(frozen=True)
class LinearFit:
    coef: tuple[float, ...]
    kept: int          # samples left after trimming
    residual: float    # relative RMS residual of the kept samples
    spread: tuple[float, ...]  # (min, max) of each regressor over the kept samples


@dataclass(frozen=True)
class FitStatus:
    """What the fit knows, for the planner's reason and Diagnostics."""

    windows: int               # informative windows taken in (TTFT + ITL + saturated)
    trusted: bool
    trusted_at_s: float | None
    prefill: LinearFit | None
    decode: LinearFit | None
    prefill_throughput: float | None  # tokens/s per worker
    throughput_from: str               # "saturated windows" or "TTFT slope" or "none"
    kv_capacity: float | None          # tokens per worker
    waiting_for: tuple[str, ...] = ()  # what trust still lacks, in words an operator can act on

    def describe(self) -> str:
        state = "trusted" if self.trusted else "not yet trusted: load path only"
        if not self.trusted and self.waiting_for:
            state += f" (waiting for {'; '.join(self.waiting_for)})"
        return f"profile: online fit, {self.windows} windows, {state}"


def _finite(*xs) -> bool:
    return all(x is not None and isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    o = np.argsort(values)
    cw = np.cumsum(weights[o])
    return float(values[o][np.searchsorted(cw, cw[-1] / 2.0)])


def bounded_lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Weighted least squares of y on the columns of x with coef >= lower (active set: a
    coefficient below its bound is pinned there and the rest refitted)."""
    k = x.shape[1]
    coef = lower.astype(float).copy()
    free = np.ones(k, dtype=bool)
    sw = np.sqrt(w)
    for _ in range(k + 1):
        if not free.any():
            break
        resid = y - x[:, ~free] @ coef[~free]
        sol, *_ = np.linalg.lstsq(x[:, free] * sw[:, None], resid * sw, rcond=None)
        coef[free] = sol
        low = free & (coef < lower)
        if not low.any():
            break
        coef[low] = lower[low]
        free &= ~low
    return np.maximum(coef, lower)


def fit_curve(x: np.ndarray, y: np.ndarray, w: np.ndarray, lower: np.ndarray, trim: float) -> LinearFit | None:
    """Bounded weighted fit with a constant column first in x; points far above the line (by
    relative residual) are dropped twice and the rest refitted."""
    keep = np.ones(y.size, dtype=bool)
    coef = None
    for _ in range(3):
        if keep.sum() < x.shape[1]:
            return None
        coef = bounded_lstsq(x[keep], y[keep], w[keep], lower)
        pred = np.maximum(x @ coef, 1e-9)
        rel = (y - pred) / pred
        scale = max(0.05, float(np.median(np.abs(rel[keep]))))
        new = rel <= trim * scale
        if (new == keep).all():
            break
        keep = new
    if coef is None or keep.sum() < x.shape[1]:
        return None
    pred = np.maximum(x[keep] @ coef, 1e-9)
    rel = (y[keep] - pred) / pred
    residual = float(np.sqrt(np.average(rel ** 2, weights=w[keep])))
    spread = tuple(v for j in range(1, x.shape[1]) for v in (float(x[keep, j].min()), float(x[keep, j].max())))
    return LinearFit(tuple(float(c) for c in coef), int(keep.sum()), residual, spread)


@dataclass
class OnlineFit:
    settings: FitSettings = field(default_factory=FitSettings)

    def __post_init__(self) -> None:
        h = self.settings.history
        self._ttft: deque[tuple[float, float, float]] = deque(maxlen=h)       # (t, isl, ttft ms)
        self._served: deque[tuple[float, float, float]] = deque(maxlen=h)     # (t, tokens served, worker-s)
        self._itl: deque[tuple[float, float, float, float]] = deque(maxlen=h)  # (t, kv, context, itl ms)
        self._capacity: deque[tuple[float, float, float]] = deque(maxlen=h)   # (t, tokens held, KV usage x workers)
        self._prev: Observation | None = None
        self._context: float | None = None
        self.gpus_prefill = 1
        self.gpus_decode = 1
        self.now = 0.0
        self.trusted_at_s: float | None = None
        self._status: FitStatus | None = None

    # -- taking in observations -------------------------------------------------------------

    def observe(self, obs: Observation) -> FitStatus:
        """Take in one decision's window; garbage (NaN, negative, no workers) is skipped."""
        prev, self._prev = self._prev, obs
        if not _finite(obs.now_s):
            return self.status()
        self.now = float(obs.now_s)
        self.gpus_prefill = max(1, int(obs.gpus_per_prefill_worker or 1))
        self.gpus_decode = max(1, int(obs.gpus_per_decode_worker or 1))
        t, pf, dec = obs.traffic, obs.prefill, obs.decode
        isl, osl = t.avg_isl, t.avg_osl
        arrived = (t.num_requests * isl / t.duration_s
                   if _finite(isl, t.duration_s) and t.duration_s > 0 and isl > 0 and t.num_requests > 0 else None)
        if _finite(isl, osl) and isl > 0 and osl >= 0:
            self._context = isl + osl / 2.0
        # idle TTFT
        queued_before = prev is not None and prev.prefill.queued_requests > 0
        if (_finite(isl, t.avg_ttft_ms) and isl > 0 and t.avg_ttft_ms > 0 and pf.active > 0
                and pf.queued_requests <= 0 and not queued_before and arrived is not None):
            thpt = self._throughput()[0]
            if thpt is None or arrived / pf.active <= self.settings.idle_load * thpt:
                self._ttft.append((self.now, float(isl), float(t.avg_ttft_ms)))
        # saturated prefill: tokens served per worker
        if (prev is not None and pf.queued_requests > 0 and prev.prefill.queued_requests > 0
                and pf.active > 0 and pf.active == prev.prefill.active and arrived is not None):
            grown = (pf.queued_tokens + pf.active_tokens) - (prev.prefill.queued_tokens + prev.prefill.active_tokens)
            served = arrived * t.duration_s - grown
            if _finite(served) and served > 0:
                self._served.append((self.now, served, pf.active * t.duration_s))
        # decode ITL and KV capacity
        kv = dec.kv_usage
        if _finite(kv) and 0 <= kv <= 1.5 and dec.active > 0:
            if _finite(t.avg_itl_ms) and t.avg_itl_ms > 0 and self._context is not None:
                self._itl.append((self.now, float(kv), self._context, float(t.avg_itl_ms)))
            # with a decode queue, the tokens counted include requests the workers hold no KV for yet
            if kv > 1e-3 and dec.active_tokens > 0 and dec.queued_requests <= 0:
                self._capacity.append((self.now, float(dec.active_tokens), kv * dec.active))
        self._status = None
        return self.status()

    # -- estimates ----------------------------------------------------------------------------

    def _weights(self, ts) -> np.ndarray:
        return np.array([0.5 ** (max(0.0, self.now - x) / self.settings.half_life_s) for x in ts])

    def _prefill_fit(self) -> LinearFit | None:
        if len(self._ttft) < 2:
            return None
        ts, isl, ttft = (np.array(c) for c in zip(*self._ttft))
        x = np.column_stack([np.ones_like(isl), isl])
        return fit_curve(x, ttft, self._weights(ts), np.array([0.0, self.settings.min_slope]), self.settings.trim)

    def _decode_fit(self) -> LinearFit | None:
        if len(self._itl) < 3:
            return None
        ts, kv, ctx, itl = (np.array(c) for c in zip(*self._itl))
        x = np.column_stack([np.ones_like(kv), kv, ctx / 1000.0])
        return fit_curve(x, itl, self._weights(ts), np.zeros(3), self.settings.trim)

    def _throughput(self, pre: LinearFit | None = None) -> tuple[float | None, str]:
        s = self.settings
        if len(self._served) >= s.min_saturated:
            ts, tokens, worker_s = (np.array(c) for c in zip(*self._served))
            w = self._weights(ts)
            rate = float(np.sum(w * tokens) / np.sum(w * worker_s))
            return min(s.max_throughput, max(s.min_throughput, rate)), "saturated windows"
        pre = pre if pre is not None else self._prefill_fit()
        if pre is not None and pre.kept >= 3:
            return min(s.max_throughput, max(s.min_throughput, s.slope_share * 1000.0 / pre.coef[1])), "TTFT slope"
        if self._ttft:  # no fit yet: one prompt alone is never served faster than its TTFT says
            best = max(isl / ttft * 1000.0 for _, isl, ttft in self._ttft)
            return min(s.max_throughput, max(s.min_throughput, best)), "one prompt's TTFT"
        return None, "none"

    def kv_capacity(self) -> float | None:
        if not self._capacity:
            return None
        ts, tokens, used = (np.array(c) for c in zip(*self._capacity))
        w = self._weights(ts)
        # a garbage reading (a stale series, a restarted exporter) is far off the median: left out
        ratio = tokens / used
        mid = _weighted_median(ratio, w)
        keep = (ratio >= mid / 2) & (ratio <= mid * 2)
        cap = float(np.sum(w[keep] * tokens[keep]) / np.sum(w[keep] * used[keep]))
        return min(self.settings.max_capacity, max(self.settings.min_capacity, cap))

    def status(self) -> FitStatus:
        if self._status is not None:
            return self._status
        s = self.settings
        pre, dec = self._prefill_fit(), self._decode_fit()
        thpt, source = self._throughput(pre)
        cap = self.kv_capacity()
        pre_ok = (pre is not None and pre.kept >= s.min_prefill_windows and pre.residual <= s.max_residual
                  and pre.spread[1] >= s.min_isl_spread * max(pre.spread[0], 1e-9))
        dec_ok = (dec is not None and dec.kept >= s.min_decode_windows and dec.residual <= s.max_residual
                  and dec.spread[1] - dec.spread[0] >= s.min_kv_spread and len(self._capacity) >= s.min_capacity_windows)
        if self.trusted_at_s is None and pre_ok and dec_ok and thpt is not None:
            self.trusted_at_s = self.now
        elif self.trusted_at_s is not None and any(f is None or f.residual > 2 * s.max_residual for f in (pre, dec)):
            self.trusted_at_s = None
        waiting = () if self.trusted_at_s is not None else self._waiting_for(pre, dec, thpt)
        self._status = FitStatus(len(self._ttft) + len(self._itl) + len(self._served), self.trusted_at_s is not None,
                                 self.trusted_at_s, pre, dec, thpt, source, cap, waiting)
        return self._status

    def _waiting_for(self, pre: LinearFit | None, dec: LinearFit | None, thpt: float | None) -> tuple[str, ...]:
        """Each trust condition not met yet, with how far it is: an operator reading the status
        learns whether time will do (more windows) or the traffic or the metrics must change."""
        s, out = self.settings, []
        kept = pre.kept if pre is not None else 0
        if kept < s.min_prefill_windows:
            out.append(f"idle TTFT windows {kept}/{s.min_prefill_windows}")
        elif pre is not None and pre.spread[1] < s.min_isl_spread * max(pre.spread[0], 1e-9):
            out.append(f"prompt lengths spanning x{s.min_isl_spread:g} (seen x{pre.spread[1] / max(pre.spread[0], 1e-9):.2f})")
        if pre is not None and pre.residual > s.max_residual:
            out.append(f"TTFT residual <= {s.max_residual:g} (is {pre.residual:.2f})")
        kept = dec.kept if dec is not None else 0
        if kept < s.min_decode_windows:
            out.append(f"ITL windows with KV usage {kept}/{s.min_decode_windows}")
        elif dec is not None and dec.spread[1] - dec.spread[0] < s.min_kv_spread:
            out.append(f"KV usage varying by {s.min_kv_spread:g} (seen {dec.spread[1] - dec.spread[0]:.3f})")
        if dec is not None and dec.residual > s.max_residual:
            out.append(f"ITL residual <= {s.max_residual:g} (is {dec.residual:.2f})")
        if len(self._capacity) < s.min_capacity_windows:
            out.append(f"KV tokens held {len(self._capacity)}/{s.min_capacity_windows} readings (live: the "
                       "frontend's KV router, --router-mode kv)")
        if thpt is None:
            out.append("a prefill throughput (saturated windows or the TTFT slope)")
        return tuple(out)

    @property
    def trusted(self) -> bool:
        return self.status().trusted

    # -- the profile --------------------------------------------------------------------------

    def profile(self) -> PerformanceProfile | None:
        """The fitted profile, or None while a curve or the throughput is still unknown."""
        st = self.status()
        if st.prefill is None or st.decode is None or st.prefill_throughput is None or st.kv_capacity is None:
            return None
        a, b = st.prefill.coef
        c0, c1, c2 = st.decode.coef
        isl = np.array(PREFILL_ISL)
        ctx, kv = np.meshgrid(np.array(DECODE_CONTEXT), np.array(DECODE_KV), indexing="ij")
        ctx, kv = ctx.ravel(), kv.ravel()
        itl = np.maximum(c0 + c1 * kv + c2 * ctx / 1000.0, 1e-3)
        per_worker = kv * st.kv_capacity / ctx * 1000.0 / itl
        return PerformanceProfile.from_dict({
            "source": f"online fit ({st.windows} windows)",
            "gpus_per_prefill_worker": self.gpus_prefill, "gpus_per_decode_worker": self.gpus_decode,
            "prefill_isl": isl.tolist(), "prefill_ttft": (a + b * isl).tolist(),
            "prefill_thpt_per_gpu": [st.prefill_throughput / self.gpus_prefill] * isl.size,
            "max_kv_tokens": [st.kv_capacity],
            "x_kv_usage": kv.tolist(), "y_context_length": ctx.tolist(),
            "z_itl": itl.tolist(), "z_thpt_per_gpu": (per_worker / self.gpus_decode).tolist(),
        }, "online fit")
