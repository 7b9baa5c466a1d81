"""A model of need that holds in the tail: workers sized so that the share of requests meeting the
SLA reaches the attainment target, from the distribution of prompt lengths rather than its mean.
Pure functions (numpy); shared by the predictive planner and the replay oracle (scaler/replay/needs.py).

Prefill. A prefill worker serves prompts one after another, so a short prompt queued behind a
20k-token one waits for all of it: the tail of TTFT is set by the spread of prompt lengths, which
the mean hides. The pool is modelled as an M/G/c queue (the router hands a prompt to a free worker
when there is one, so a long prompt holds one worker, not the whole pool). The service time of a
prompt of length x is the profile's unloaded TTFT S(x); over the prompt mix it has mean E[S],
second moment E[S^2] and squared coefficient of variation cs2 = E[S^2] / E[S]^2 - 1. With arrival
rate l and c workers (offered load a = l E[S] < c):

- the probability of waiting is Erlang's C formula for M/M/c at (c, a), which is also the
  standard first approximation for M/G/c;
- given a wait, it is taken as exponential, with the M/M/c rate (c / E[S] - l) scaled by
  2 / (ca2 + cs2): the two-moment (Kingman; Allen-Cunneen) correction, whose mean wait matches the
  Pollaczek-Khinchine formula l E[S^2] / (2 (1 - rho)) at c = 1 and Poisson arrivals (ca2 = 1);
  ca2 is the squared coefficient of variation of the gaps between arrivals;
- a prompt of length x meets the TTFT target T when its wait W <= T - S(x). Prompts with
  S(x) > T meet it on no fleet and are left out of the share (as the replay's "feasible
  attainment" leaves them out), but their service time still loads the queue.

A prompt too long for an idle worker to prefill in time may still be in reach if an earlier
request left its prefix in a worker's prefix cache: a prefix-aware router sends it there and only
its uncached part is prefilled. Such "reuse-bound" prompts (`CacheReuse`) are met while their
prefix is still cached. Each worker's cache of K tokens is filled, least recently used out, by
its share of the tokens prefilled anew, l u / c (u: uncached tokens per request), so a prefix
stays about T = c K / (l u) seconds after its last use (the characteristic time of an LRU cache),
and a reuse-bound prompt is met when the time since its prefix was last used is within T: the
share of their reuse ages up to T, from the recent distribution of those ages. More workers keep
prefixes longer; l is the time-average rate (a clump of requests does not flush the caches).
Replay knows each prompt's cached prefix and its age from the block hashes.

The attainment is the mean of P(W <= T - S(x)) over the reachable prompts; the workers needed are
the fewest at which it reaches the target (bisection: attainment rises with c). Load is rarely
steady within a window: with `bursts` (rates and the share of requests that arrived at each rate:
the slices of a window for the oracle, the recent history for the planner) each rate is taken as
steady and the shares are summed, so a clump of requests counts with the requests it holds.
Checked against a direct simulation of the queue in tests/planner/test_tail_model.py: within
0.02 where the attainment is 0.93-0.999, and cautious (lower) near saturation.

Round robin (`routing="round_robin"`). Dynamo's frontend by default deals prompts to workers in
turn, and a worker serves its own queue in order: a short prompt waits behind a long one on its
worker while others are idle, which the pool above does not see. Each worker then gets every c-th
arrival: gaps whose squared coefficient of variation is ca2 / c (gamma distributed here, a sum of
c exponentials when ca2 = 1), far more regular than the stream. A queued prompt holds its worker
for its tokens at the profiled throughput (batched prefill shares the fixed cost that an idle
worker's TTFT of a short prompt includes); its own TTFT is its wait plus its unloaded TTFT. The
waits follow Lindley's recursion W' = max(0, W + B - A), evaluated on fixed random draws of gaps
and prompts (stratified over the mix), so the answer is deterministic. A slice is not a steady
state: a clump of seconds does not build the queue a steady load at that rate would, and an
overloaded slice still serves its first prompts in time. So each load class is played from an
idle worker for RR_HISTORY_S seconds at its rate and scored over the next RR_SLICE_S. Up to
RR_CLASSES load classes (merged on a log scale) keep a decision within its time. Against a direct
simulation of the same queue: within 0.02 (tests/planner/test_tail_model.py); against the replay
engine on fixed fleets: benchmarks/prefill_model_fit.py and docs/planner.md.

Decode. KV tokens held at any moment are a sum over the requests in flight (an M/G/infinity
"shot noise"): a request of prompt x and output y holds about x + y/2 tokens for y x ITL seconds.
Campbell's theorem gives the mean l E[y ITL (x + y/2)] and the variance l E[y ITL (x + y/2)^2] of
that sum; capacity for the mean plus z standard deviations, z the normal quantile of the
attainment target, keeps the KV cache from filling (and requests from queueing) in all but
1 - target of the time. Token throughput at the ITL target bounds it too, as before.

Sources: L. Kleinrock, Queueing Systems Vol. 1 (1975), sec. 3.5 (Erlang C) and 5.6-5.7 (M/G/1,
Pollaczek-Khinchine mean value formula); J. F. C. Kingman, "The single server queue in heavy
traffic", Proc. Cambridge Philos. Soc. 57 (1961) (G/G/1 mean wait); A. O. Allen, Probability,
Statistics, and Queueing Theory (1990), sec. 6 (the Allen-Cunneen G/G/c approximation);
W. Whitt, "Approximations for the GI/G/m queue", Production and Operations Management 2(2) (1993)
(two-moment approximations, the exponential conditional wait); S. M. Ross, Stochastic Processes
(1996), sec. 2.3 (M/G/infinity, Campbell's theorem); H. Che, Y. Tung, Z. Wang, "Hierarchical Web
caching systems: modeling, design and experimental results", IEEE J. Sel. Areas Commun. 20(7)
(2002) (the characteristic time of an LRU cache); D. V. Lindley, "The theory of queues with a
single server", Proc. Cambridge Philos. Soc. 48 (1952) (the waiting-time recursion of GI/G/1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from scaler.profile import PerformanceProfile

_STANDARD_NORMAL = NormalDist()

# log-spaced prompt-length bins: 48 edges from 16 to 512k tokens (constant-size state, fast sums)
_EDGES = np.geomspace(16.0, 524288.0, 49)
# log-spaced bins of prefix reuse ages, 0.1 s to about a day
_AGE_EDGES = np.geomspace(0.1, 102400.0, 31)


@dataclass(frozen=True)
class CacheReuse:
    """Prompts in reach only from a cached prefix (see the module docstring): their share of all
    prompts, the distribution of the time since their prefix was last used (representative ages
    and weights), the mean tokens a request has prefilled anew, and a worker's cache in tokens."""

    share: float
    age_s: np.ndarray
    weight: np.ndarray
    uncached_tokens: float
    cache_tokens: float

    def met(self, workers: int, rate: float) -> float:
        """Share of them met on `workers` at a time-average arrival rate `rate`: reuse ages within
        the time a prefix stays cached."""
        if rate <= 0 or self.uncached_tokens <= 0:
            return 1.0
        keep_s = workers * self.cache_tokens / (rate * self.uncached_tokens)
        return float(np.dot(self.weight, self.age_s <= keep_s))


@dataclass(frozen=True)
class PromptMix:
    """A distribution of prompt lengths: representative lengths and their weights (sum 1).
    `reuse`: the prompts among them in reach only from a cached prefix (they are in `isl` at
    their full length, which is what they cost without it)."""

    isl: np.ndarray
    weight: np.ndarray
    reuse: CacheReuse | None = None

    @classmethod
    def point(cls, isl: float) -> "PromptMix":
        return cls(np.array([max(1.0, float(isl))]), np.array([1.0]))

    @classmethod
    def from_lengths(cls, lengths: Iterable[float], weights: Iterable[float] | None = None) -> "PromptMix | None":
        """From individual prompt lengths (replay: the trace's requests), binned on a log scale
        with each bin represented by the mean length in it. None when there is nothing."""
        x = np.asarray(list(lengths), float)
        if x.size == 0:
            return None
        w = np.ones_like(x) if weights is None else np.asarray(list(weights), float)
        k = np.clip(np.searchsorted(_EDGES, x, side="right") - 1, 0, _EDGES.size - 2)
        tot = np.bincount(k, weights=w, minlength=_EDGES.size - 1)
        mass = np.bincount(k, weights=w * x, minlength=_EDGES.size - 1)
        keep = tot > 0
        if not keep.any():
            return None
        return cls(mass[keep] / tot[keep], tot[keep] / tot[keep].sum())

    @classmethod
    def from_histogram(cls, buckets: Mapping[float, float]) -> "PromptMix | None":
        """From a cumulative histogram by upper edge (live: the increase of the frontend's
        `dynamo_frontend_input_sequence_tokens_bucket` over a window; +Inf is the total). Each
        bucket is represented by its upper edge (the cautious side); the +Inf bucket by twice the
        largest finite edge."""
        edges = sorted((float(le), max(0.0, float(c))) for le, c in buckets.items())
        lengths, weights, prev = [], [], 0.0
        finite = [le for le, _ in edges if math.isfinite(le)]
        for le, c in edges:
            n = c - prev
            prev = max(prev, c)
            if n <= 0:
                continue
            lengths.append(le if math.isfinite(le) else 2.0 * (finite[-1] if finite else 1.0))
            weights.append(n)
        if not weights:
            return None
        w = np.array(weights)
        return cls(np.maximum(1.0, np.array(lengths)), w / w.sum())

    @property
    def mean(self) -> float:
        return float(np.dot(self.isl, self.weight))

    def scaled_to_mean(self, mean: float) -> "PromptMix":
        """The same shape with another mean (the recent mean over an older, wider sample)."""
        m = self.mean
        if m <= 0 or mean <= 0:
            return self
        return PromptMix(self.isl * (mean / m), self.weight, self.reuse)


def _service_s(mix: PromptMix, profile: PerformanceProfile) -> np.ndarray:
    """Seconds a worker is busy with each length: its unloaded TTFT (per GPU count as profiled)."""
    return np.array([profile.prefill.ttft_ms_at(x) for x in mix.isl]) / 1000.0


def _busy_s(mix: PromptMix, profile: PerformanceProfile) -> np.ndarray:
    """Seconds of a worker's time each length takes while prompts queue: its tokens at the
    profiled prefill throughput, which batching reaches (less than the unloaded TTFT of a short
    prompt, whose fixed cost a batch shares)."""
    per_worker = max(1, profile.gpus_per_prefill_worker)
    return np.array([x / max(1e-9, profile.prefill.throughput_per_gpu_at(x) * per_worker) for x in mix.isl])


def burst_factors(arrivals_s: np.ndarray, slice_s: float, span: tuple[float, float] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The request-weighted distribution of load in short slices relative to the mean: (rate of
    the slice / mean rate, share of the requests that arrived in such a slice). Arrivals clump
    (a burst of requests in a second, then a quiet spell); a queue sees the clump, not the mean."""
    t = np.asarray(arrivals_s, float)
    if t.size == 0:
        return np.array([1.0]), np.array([1.0])
    a, b = span if span is not None else (float(t.min()), float(t.max()) + 1e-9)
    n_slices = max(1, int(math.ceil((b - a) / slice_s)))
    counts = np.bincount(np.clip(((t - a) // slice_s).astype(int), 0, n_slices - 1), minlength=n_slices)
    mean = t.size / n_slices
    busy = counts > 0
    return counts[busy] / mean, counts[busy] / t.size


def prefill_attainment(rate: float, mix: PromptMix, workers: float, profile: PerformanceProfile,
                       ttft_ms: float, ca2: float = 1.0, bursts: tuple[np.ndarray, np.ndarray] | None = None,
                       routing: str = "pooled") -> float:
    """Expected share of reachable requests whose TTFT meets `ttft_ms` on `workers` prefill
    workers (see the module docstring); 1.0 when no prompt is reachable or nothing arrives.
    `bursts`: (rate factors, request shares) from `burst_factors`; each slice is taken as
    stationary at its own rate (overloaded slices meet nothing)."""
    s = _service_s(mix, profile)
    busy = _busy_s(mix, profile) if routing == "round_robin" else None
    return _mixed(rate, s, mix.weight, workers, ttft_ms / 1000.0, ca2, bursts, mix.reuse, busy)


def _mixed(rate: float, s: np.ndarray, w: np.ndarray, workers: float, target_s: float, ca2: float,
           bursts: tuple[np.ndarray, np.ndarray] | None, reuse: CacheReuse | None = None,
           busy: np.ndarray | None = None) -> float:
    """Attainment over the load classes; `busy` (a prompt's queue time by length) selects the
    round-robin model, None the pooled one."""
    if bursts is None or len(bursts[0]) == 0 or float(np.sum(bursts[1])) <= 0:
        rates, share = np.array([rate]), np.array([1.0])
    else:
        rates, share = rate * np.asarray(bursts[0], float), np.asarray(bursts[1], float)
    if busy is not None:
        rates, share = _coarse(rates, share)
    bound = None
    if reuse is not None and reuse.share > 0:
        # the caches turn over at the time-average rate: requests over time, slice by slice
        loaded = rates > 0
        mean_rate = float(share[loaded].sum() / np.sum(share[loaded] / rates[loaded])) if loaded.any() else 0.0
        bound = (reuse.share, reuse.met(int(math.floor(workers + 1e-9)), mean_rate))
    if busy is not None:
        return float(np.dot(share, _round_robin_v(rates, s, busy, w, workers, target_s, ca2, bound)))
    return float(np.dot(share, _attainment_v(rates, s, w, workers, target_s, ca2, bound)))


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with `servers` and offered load `offered`
    (= rate x mean service), by the numerically stable Erlang-B recursion; 1 when overloaded."""
    return float(erlang_c_v(servers, np.array([offered]))[0])


def erlang_c_v(servers: int, offered: np.ndarray) -> np.ndarray:
    """`erlang_c` for many offered loads at once."""
    a = np.maximum(np.asarray(offered, float), 0.0)
    b = np.ones_like(a)
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    rho = a / servers
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(a >= servers, 1.0, b / (1.0 - rho + rho * b))
    return np.where(a <= 0, 0.0, out)


@dataclass(frozen=True)
class _Reach:
    """Which prompts an idle worker serves in time (`reach`, their share `shared`), and those in
    reach only from a cached prefix (`bound_share` of all, `bound_met` of them met)."""

    reach: np.ndarray
    shared: float
    bound_share: float
    bound_met: float

    @classmethod
    def of(cls, s: np.ndarray, w: np.ndarray, target_s: float, bound: tuple[float, float] | None) -> "_Reach":
        reach = s <= target_s
        share, met = (max(0.0, float(bound[0])), float(bound[1])) if bound is not None else (0.0, 1.0)
        return cls(reach, float(w[reach].sum()), share, met)

    def settled(self, rates: np.ndarray, workers: int) -> np.ndarray | None:
        """The attainment at each rate when no queue needs modelling: all met when no prompt is
        in reach, none of an arriving load without workers; None otherwise."""
        if self.shared + self.bound_share <= 0:
            return np.ones_like(rates)
        if workers <= 0:
            return np.where(rates > 0, 0.0, 1.0)
        return None

    def blend(self, att: np.ndarray) -> np.ndarray:
        """Attainment over all prompts in reach, from that over those an idle worker serves in time."""
        if self.bound_share <= 0:
            return att
        return (self.shared * att + self.bound_share * self.bound_met) / (self.shared + self.bound_share)


def _attainment_v(rates: np.ndarray, s: np.ndarray, w: np.ndarray, workers: float, target_s: float,
                  ca2: float, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Attainment at each arrival rate, pooled M/G/c: the router sends each prompt to a free worker
    when there is one, so a long prompt holds one worker, not the queue. P(wait) is Erlang C at
    c = floor(workers); given a wait, it is exponential with rate (c / E[S] - rate) scaled by
    2 / (ca2 + cs2) (the two-moment correction of Kingman and Whitt to the M/M/c rate).
    `bound`: (share of all prompts in reach only from a cached prefix, share of those met)."""
    q, c = _Reach.of(s, w, target_s, bound), int(math.floor(workers + 1e-9))
    if (settled := q.settled(rates, c)) is not None:
        return settled
    es, es2 = float(np.dot(w, s)), float(np.dot(w, s * s))
    cs2 = max(0.0, es2 / (es * es) - 1.0) if es > 0 else 0.0
    offered = rates * es
    wait = erlang_c_v(c, offered)
    theta = np.maximum(0.0, c / es - rates) * 2.0 / (max(0.0, ca2) + cs2)
    slack = target_s - s[q.reach]
    ok = 1.0 - wait[:, None] * np.exp(-theta[:, None] * slack[None, :])
    att = q.blend(ok @ w[q.reach] / q.shared if q.shared > 0 else np.ones_like(rates))
    return np.where(rates <= 0, 1.0, np.where(offered >= c, 0.0, att))


# Round robin (see the module docstring): arrivals drawn per worker, the seconds of load at a
# slice's rate that precede the slice scored, the slice's length, and at most this many load classes.
RR_ARRIVALS = 4096
RR_HISTORY_S = 10.0
RR_SLICE_S = 5.0
RR_CLASSES = 12


@lru_cache(maxsize=512)
def _worker_gaps(workers: int, ca2: float) -> np.ndarray:
    """Gaps between the prompts one of `workers` workers is dealt, in units of the stream's mean
    gap: gamma with mean `workers` and squared coefficient of variation ca2 / workers. Fixed
    seeds: the same question gets the same answer, and more workers are judged on like draws."""
    shape = workers / max(ca2, 1e-3)
    gaps = np.random.default_rng([workers, int(round(ca2 * 1000))]).gamma(shape, workers / shape, RR_ARRIVALS)
    gaps.flags.writeable = False
    return gaps


@lru_cache(maxsize=1)
def _prompt_draws() -> np.ndarray:
    """Stratified uniforms in a fixed random order: each prompt length in its exact share."""
    u = (np.random.default_rng(0x5eed).permutation(RR_ARRIVALS) + 0.5) / RR_ARRIVALS
    u.flags.writeable = False
    return u


def _coarse(rates: np.ndarray, share: np.ndarray, classes: int = RR_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """At most `classes` load classes, log-spaced between the lowest and highest rate, each at
    the request-weighted mean of its rates (the top class keeps the highest loads together)."""
    loaded = rates > 0
    if int(loaded.sum()) <= classes:
        return rates, share
    r, w = rates[loaded], share[loaded]
    edges = np.geomspace(float(r.min()), float(r.max()) * (1 + 1e-9), classes + 1)
    k = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, classes - 1)
    tot = np.bincount(k, weights=w, minlength=classes)
    mass = np.bincount(k, weights=w * r, minlength=classes)
    keep = tot > 0
    out_r, out_w = mass[keep] / tot[keep], tot[keep]
    idle = float(share[~loaded].sum())
    if idle > 0:
        out_r, out_w = np.append(out_r, 0.0), np.append(out_w, idle)
    return out_r, out_w


def _round_robin_v(rates: np.ndarray, s: np.ndarray, busy: np.ndarray, w: np.ndarray, workers: float,
                   target_s: float, ca2: float, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Attainment at each arrival rate when prompts are dealt to c workers in turn and each
    worker serves its own queue in order (see the module docstring). Per worker, Lindley's
    recursion W' = max(0, W + B - A) from an idle start is W_n = P_n - min(P_0..P_n) over the
    partial sums P of B - A: a cumulative sum and a running minimum, on blocks of draws each
    spanning RR_HISTORY_S + RR_SLICE_S seconds at the rate, of which the last RR_SLICE_S is scored."""
    q, c = _Reach.of(s, w, target_s, bound), int(math.floor(workers + 1e-9))
    if (settled := q.settled(rates, c)) is not None:
        return settled
    cdf = np.cumsum(w) / float(w.sum())
    idx = np.minimum(np.searchsorted(cdf, _prompt_draws(), side="right"), s.size - 1)
    own, work, ok = s[idx], busy[idx], q.reach[idx]
    gaps = _worker_gaps(c, float(ca2))
    out = np.ones(rates.size)
    for i, r in enumerate(rates):
        if r <= 0 or not ok.any():
            continue
        n = int(min(RR_ARRIVALS, math.ceil(r * (RR_HISTORY_S + RR_SLICE_S) / c) + 1))
        blocks = RR_ARRIVALS // n
        m = blocks * n
        gap = (gaps[:m] / r).reshape(blocks, n)
        at = np.cumsum(gap, axis=1)
        walk = np.zeros((blocks, n))
        np.cumsum(work[:m].reshape(blocks, n)[:, :-1] - gap[:, 1:], axis=1, out=walk[:, 1:])
        wait = walk - np.minimum.accumulate(walk, axis=1)
        scored = ok[:m].reshape(blocks, n) & (at >= at[:, -1:] - RR_SLICE_S)
        met = scored & (wait + own[:m].reshape(blocks, n) <= target_s)
        out[i] = met.sum() / max(1, int(scored.sum()))
    return np.where(rates <= 0, 1.0, q.blend(out))


def prefill_workers(rate: float, mix: PromptMix, profile: PerformanceProfile, ttft_ms: float,
                    attainment: float, ca2: float = 1.0, bursts: tuple[np.ndarray, np.ndarray] | None = None,
                    tol: float = 1e-3, routing: str = "pooled") -> float:
    """Fractional prefill workers whose expected attainment reaches `attainment` (callers round).
    `routing`: "pooled" (the next prompt to a free worker) or "round_robin" (dealt in turn; whole
    workers only)."""
    if rate <= 0:
        return 0.0
    s, w, target_s = _service_s(mix, profile), mix.weight, ttft_ms / 1000.0
    busy = _busy_s(mix, profile) if routing == "round_robin" else None
    reuse = mix.reuse

    def met(workers: float) -> bool:
        return _mixed(rate, s, w, workers, target_s, ca2, bursts, reuse, busy) >= attainment

    if busy is not None:  # the fewest whole workers: double, then halve
        lo, hi = 0, 1
        while not met(hi):
            lo, hi = hi, hi * 2
            if hi > 1 << 20:
                return float(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if met(mid) else (mid, hi)
        return float(hi)
    load = rate * float(np.dot(w, s))  # workers kept busy on average: the floor (rho = 1)
    lo = load
    hi = max(load * 2.0, load + 1.0)
    while not met(hi):
        lo, hi = hi, hi * 2.0
        if hi > 1e6:
            return hi
    while hi - lo > tol * max(1.0, lo):
        mid = 0.5 * (lo + hi)
        if met(mid):
            hi = mid
        else:
            lo = mid
    # attainment steps at whole workers (c = floor(workers)), so the bisection ends just above the
    # whole number that meets the target: rounding that up would add a worker
    whole = math.floor(hi + 1e-9)
    if whole >= 1 and met(whole):
        return float(whole)
    return hi


def allowed_mean_wait(slack_ms: np.ndarray, weight: np.ndarray, target: float) -> float | None:
    """The mean wait W at which exponential waits, every prompt waiting, leave `target` of the
    prompts within their slack: sum(w (1 - exp(-s / W))) / sum(w) = target over the prompts with
    slack s > 0 (bisection in log W; the share falls as W grows). Prompts with little slack set
    it: a few near the target take most of the allowance. None when no prompt has slack."""
    keep = slack_ms > 0
    if not keep.any():
        return None
    s, w = slack_ms[keep], weight[keep] / weight[keep].sum()

    def share(mean_wait: float) -> float:
        return float(w @ (1.0 - np.exp(-s / mean_wait)))

    lo, hi = 1e-3, float(s.max()) * 1e3
    if share(lo) < target:
        return lo
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if share(mid) >= target else (lo, mid)
    return lo


def mean_wait_ratio(avg_ttft_ms: float, mix: PromptMix, profile: PerformanceProfile, ttft_ms: float,
                    target: float) -> float | None:
    """The window's mean wait (its mean TTFT less the mix's idle TTFT) over the mean wait the
    target allows (`allowed_mean_wait`); None when no prompt of the mix is in reach."""
    idle_ms = _service_s(mix, profile) * 1000.0
    allowed = allowed_mean_wait(ttft_ms - idle_ms, mix.weight, target)
    if allowed is None:
        return None
    return max(0.0, avg_ttft_ms - float(mix.weight @ idle_ms)) / allowed


def normal_quantile(p: float) -> float:
    """z with P(Z <= z) = p for a standard normal (p clamped away from 0 and 1)."""
    return _STANDARD_NORMAL.inv_cdf(min(max(p, 1e-9), 1 - 1e-9))


def kv_in_flight(rate: float, isl: np.ndarray, osl: np.ndarray, weight: np.ndarray, itl_s: float) -> tuple[float, float]:
    """(mean, standard deviation) of the KV tokens held by requests in flight (Campbell's theorem)."""
    hold = osl * itl_s
    size = isl + osl / 2.0
    mean = rate * float(np.dot(weight, hold * size))
    var = rate * float(np.dot(weight, hold * size * size))
    return mean, math.sqrt(max(0.0, var))


def decode_kv_workers(rate: float, isl: np.ndarray, osl: np.ndarray, weight: np.ndarray, itl_s: float,
                      kv_tokens: float, kv_headroom: float, attainment: float) -> float:
    """Decode workers whose KV cache holds what is in flight in all but 1 - attainment of the time."""
    if rate <= 0 or kv_tokens <= 0:
        return 0.0
    mean, sd = kv_in_flight(rate, isl, osl, weight, itl_s)
    return (mean + max(0.0, normal_quantile(attainment)) * sd) / (kv_tokens * kv_headroom)


@dataclass
class PromptHistory:
    """The recent prompt-length distribution, decayed with age (half-life `half_life_s`), in the
    fixed log-spaced bins of `PromptMix.from_lengths`: constant memory and time per decision."""

    half_life_s: float = 300.0
    weight: np.ndarray | None = None
    mass: np.ndarray | None = None
    cache_tokens: float = 0.0  # a worker's prefix cache (CacheReuse); 0: reuse not tracked
    uncached: float = 0.0  # tokens prefilled anew, decayed alike
    ages: np.ndarray | None = None  # reuse ages of the prompts in reach only from a cached prefix

    def _decay(self, dt: float) -> None:
        if self.weight is None:
            self.weight = np.zeros(_EDGES.size - 1)
            self.mass = np.zeros(_EDGES.size - 1)
        if dt > 0:
            k = 0.5 ** (dt / self.half_life_s)
            self.weight *= k
            self.mass *= k
            self.uncached *= k
            if self.ages is not None:
                self.ages *= k

    def add(self, mix: PromptMix | None, count: float, dt: float = 0.0, uncached: float | None = None,
            bound_ages=()) -> None:
        """Age what is held by `dt` seconds, then add `count` prompts distributed as `mix`, which
        prefilled `uncached` tokens anew between them (default: all of their tokens) and of which
        those in reach only from a cached prefix had it last used `bound_ages` seconds before."""
        self._decay(dt)
        if mix is None or count <= 0:
            return
        self.uncached += mix.mean * count if uncached is None else max(0.0, uncached)
        ages = np.asarray(list(bound_ages), float)
        if ages.size:
            if self.ages is None:
                self.ages = np.zeros(_AGE_EDGES.size - 1)
            np.add.at(self.ages, np.clip(np.searchsorted(_AGE_EDGES, ages, side="right") - 1, 0,
                                         _AGE_EDGES.size - 2), 1.0)
        assert self.weight is not None and self.mass is not None
        k = np.clip(np.searchsorted(_EDGES, mix.isl, side="right") - 1, 0, _EDGES.size - 2)
        np.add.at(self.weight, k, mix.weight * count)
        np.add.at(self.mass, k, mix.weight * count * mix.isl)

    def mix(self) -> PromptMix | None:
        if self.weight is None or self.weight.sum() <= 1e-9:
            return None
        keep = self.weight > 1e-12
        total = self.weight[keep].sum()
        return PromptMix(self.mass[keep] / self.weight[keep], self.weight[keep] / total, self._reuse())

    def _reuse(self) -> CacheReuse | None:
        count = self.weight.sum() if self.weight is not None else 0.0  # prompts, decayed
        if self.cache_tokens <= 0 or self.ages is None or count <= 0 or self.ages.sum() <= 1e-9:
            return None
        keep = self.ages > 1e-12
        mid = np.sqrt(_AGE_EDGES[:-1] * _AGE_EDGES[1:])  # each bin by its geometric middle
        return CacheReuse(min(1.0, float(self.ages.sum() / count)), mid[keep],
                          self.ages[keep] / self.ages[keep].sum(), float(self.uncached / count), self.cache_tokens)
