"""Reference policies the planner is judged against. Each is a `scaler.policy.Policy`."""

from __future__ import annotations

from dataclasses import dataclass, field

from scaler.algorithms.hpa import HPA, HPAConfig
from scaler.planner.sizing import Load, ceil_replicas, decode_replicas, prefill_replicas
from scaler.policy import Decision, Observation
from scaler.profile import PerformanceProfile
from scaler.replay.needs import WindowNeed


@dataclass
class Static:
    prefill: int
    decode: int
    name: str = "static"

    def initial_tick_s(self) -> float:
        return 1.0

    def decide(self, obs: Observation) -> Decision:
        return Decision(self.prefill, self.decode, 3600.0, f"fixed fleet {self.prefill}P + {self.decode}D")


@dataclass
class HPAPolicy:
    """Two HPAs as the external-metrics server would feed them: prefill on queue depth
    (AverageValue per replica), decode on mean KV-cache usage (ratio to target)."""

    queue_target: float = 2.0
    kv_target: float = 0.7
    sync_s: float = 15.0
    max_replicas: int = 64
    name: str = "hpa"
    prefill_hpa: HPA = field(init=False)
    decode_hpa: HPA = field(init=False)

    def __post_init__(self) -> None:
        self.prefill_hpa = HPA(HPAConfig(max_replicas=self.max_replicas))
        self.decode_hpa = HPA(HPAConfig(max_replicas=self.max_replicas))

    def initial_tick_s(self) -> float:
        return self.sync_s

    def decide(self, obs: Observation) -> Decision:
        # HPA reads current replicas from /scale: the spec, i.e. active + starting
        cur_p, cur_d = max(1, obs.prefill.non_draining), max(1, obs.decode.non_draining)
        queue = obs.prefill.queued_requests + obs.decode.queued_requests
        p = self.prefill_hpa.step(obs.now_s, cur_p,
                                  self.prefill_hpa.desired_from_average_value(queue, self.queue_target, cur_p))
        kv = obs.decode.kv_usage or 0.0
        d = self.decode_hpa.step(obs.now_s, cur_d, self.decode_hpa.raw_desired(cur_d, kv / self.kv_target))
        return Decision(p, d, self.sync_s, f"queue {queue} (target {self.queue_target}/replica), "
                                           f"KV {kv:.2f} (target {self.kv_target})")


@dataclass
class DynamoLoad:
    """Load-based rules: every 5 s, +-1 replica per pool on queued prefill tokens and KV usage."""

    profile: PerformanceProfile
    ttft_ms: float = 500.0
    interval_s: float = 5.0
    kv_high: float = 0.8
    kv_low: float = 0.4
    max_replicas: int = 64
    name: str = "dynamo-load"

    def initial_tick_s(self) -> float:
        return self.interval_s

    def decide(self, obs: Observation) -> Decision:
        cur_p, cur_d = obs.prefill.non_draining, obs.decode.non_draining
        per_worker = self.profile.prefill.throughput_per_gpu_at(2000.0)
        queued_s = obs.prefill.queued_tokens / max(1, cur_p) / per_worker  # seconds of queued work
        p = cur_p + 1 if queued_s > self.ttft_ms / 1000.0 * 0.5 else (
            cur_p - 1 if queued_s < 0.02 and obs.prefill.running_requests < cur_p else cur_p)
        kv = obs.decode.kv_usage or 0.0
        d = cur_d + 1 if kv > self.kv_high else (cur_d - 1 if kv < self.kv_low else cur_d)
        p, d = max(1, min(self.max_replicas, p)), max(1, min(self.max_replicas, d))
        return Decision(p, d, self.interval_s, f"queued prefill {queued_s:.2f}s/worker, KV {kv:.2f}")


@dataclass
class DynamoThroughput:
    """Throughput-based planning: constant predictor, fixed interval, profile sizing with
    correction factors from observed latency."""

    profile: PerformanceProfile
    ttft_ms: float = 500.0
    itl_ms: float = 50.0
    interval_s: float = 180.0
    max_replicas: int = 64
    name: str = "dynamo-throughput"
    _count: int = 0
    _dur: float = 0.0
    _isl: float = 0.0
    _osl: float = 0.0
    _ttft: list[float] = field(default_factory=list)
    _itl: list[float] = field(default_factory=list)
    _next: float = 0.0

    def initial_tick_s(self) -> float:
        return 5.0

    def decide(self, obs: Observation) -> Decision:
        t = obs.traffic
        self._count += t.num_requests
        self._dur += t.duration_s
        if t.num_requests:
            self._isl += (t.avg_isl or 0) * t.num_requests
            self._osl += (t.avg_osl or 0) * t.num_requests
            if t.avg_ttft_ms is not None:
                self._ttft.append(t.avg_ttft_ms)
            if t.avg_itl_ms is not None:
                self._itl.append(t.avg_itl_ms)
        if obs.now_s < self._next:
            return Decision(None, None, 5.0, "between planning intervals")
        self._next = obs.now_s + self.interval_s
        if self._count == 0 or self._dur <= 0:
            self._reset()
            return Decision(None, None, 5.0, "no traffic in the interval: keep")  # the known idle stall
        isl, osl = self._isl / self._count, self._osl / self._count
        load = Load(self._count / self._dur, isl, osl)
        p_corr = d_corr = 1.0
        if self._ttft:
            p_corr = min(3.0, max(0.5, (sum(self._ttft) / len(self._ttft)) / self.profile.prefill.ttft_ms_at(isl)))
        if self._itl:
            expected = self.profile.decode.itl_ms_at(0.5, isl + osl / 2)
            d_corr = min(3.0, max(0.5, (sum(self._itl) / len(self._itl)) / expected))
        p = ceil_replicas(prefill_replicas(load, self.profile, self.ttft_ms, correction=p_corr, utilization=1.0))
        d = ceil_replicas(decode_replicas(load, self.profile, self.itl_ms, correction=d_corr))
        self._reset()
        p, d = max(1, min(self.max_replicas, p)), max(1, min(self.max_replicas, d))
        return Decision(p, d, 5.0, f"last interval {load.rate:.2f} req/s, corrections {p_corr:.2f}/{d_corr:.2f}")

    def _reset(self) -> None:
        self._count, self._dur, self._isl, self._osl = 0, 0.0, 0.0, 0.0
        self._ttft, self._itl = [], []


@dataclass
class Oracle:
    """Knows the future: starts exactly what the profile says each window needs, one start-up
    delay ahead, and keeps it until the window passes. The GPU-hours reference."""

    needs: list[WindowNeed]
    startup_s: float
    window_s: float = 30.0
    name: str = "oracle"
    headroom: float = 1.0  # capacity started per unit of need (references sized for an attainment)

    def initial_tick_s(self) -> float:
        return 1.0

    def _need_at(self, t: float) -> tuple[int, int]:
        k = int(t // self.window_s)
        if 0 <= k < len(self.needs):
            return self.needs[k].prefill, self.needs[k].decode
        return 0, 0

    def decide(self, obs: Observation) -> Decision:
        # what is asked for now serves from now + startup on; hold the largest need of every window
        # until then as well, so that workers started for a coming spike are never cancelled
        # while they start
        first = int(obs.now_s // self.window_s)
        last = int((obs.now_s + self.startup_s + self.window_s) // self.window_s)
        ks = [self._need_at(k * self.window_s) for k in range(first, last + 1)]
        p = max(1, ceil_replicas(self.headroom * max(k[0] for k in ks)))
        d = max(1, ceil_replicas(self.headroom * max(k[1] for k in ks)))
        nxt = self.window_s - (obs.now_s % self.window_s) or self.window_s
        return Decision(p, d, min(nxt, 10.0), f"future need {p}P + {d}D")


def ceiling_fleet(peak: tuple[int, int]) -> tuple[int, int]:
    return max(16, 3 * peak[0]), max(16, 3 * peak[1])
