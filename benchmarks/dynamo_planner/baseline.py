"""Dynamo 1.6.1's own planner as a replay baseline, run by Dynamo's own code.

`DynamoOwnPlanner.run_replay` hands the trace to `dynamo.replay.run_trace_replay(...,
planner_config=...)`, the replay entry Dynamo ships for planner-in-the-loop runs: the same Rust
replay engine and mocker workers our policies run in (same engine arguments, same initial fleet),
with Dynamo's planner (`dynamo.planner`, its plugin pipeline and load-based scaling) deciding.
The result comes back as a `scaler.replay.engine.ReplayRun`, so it is scored like every policy.

Modes (Dynamo's `optimization_target`):
- "load": reactive +-1 per pool every 5 s on per-engine queued prefill tokens and decode KV
  utilisation, with thresholds we set to the ones `scaler.replay.baselines.DynamoLoad`
  re-implements (so the comparison is of the code, not of the thresholds);
- "throughput": the same loop with Dynamo's built-in static thresholds (prefill: queued tokens
  >= the context length; decode: KV use > 100% up, < 60% down). This is what Dynamo 1.6.1 calls
  "throughput"; the profile-driven throughput planner (`scaler.replay.baselines.DynamoThroughput`)
  corresponds to its "sla" target, which needs AISimulate's performance model and cannot run here.

The optional environment: `pip install -r benchmarks/dynamo_planner/requirements.txt` (what
`dynamo.planner` imports that `ai-dynamo --no-deps` leaves out) and the stand-ins in
`stubs/` for AISimulate, which PyPI does not serve; they go on sys.path only here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scaler.profile import PerformanceProfile
from scaler.replay.engine import EngineConfig, ReplayRun, TimelinePoint
from dynamo_scaling.traces import Request, write_mooncake

STUBS = Path(__file__).resolve().parent / "stubs"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
# what importing Dynamo's planner and its replay adapter needs beyond the product's environment
NEEDED = ("dynamo.planner", "sklearn", "pandas", "plotly", "pmdarima", "statsmodels", "filterpy", "prophet",
          "prometheus_api_client")
MODES = ("load", "throughput")
# Dynamo's easy modes compare prefill queues with the model's context length, which the mocker
# takes from max_model_len (unset by default: prefill would never scale). Llama-3.1-8B's context,
# the model the bundled profile stands for.
CONTEXT_LENGTH = 131072

log = logging.getLogger(__name__)


def missing() -> list[str]:
    """Modules of the optional environment that are not installed (cheap: nothing is imported)."""
    out = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(name)
    return out


def available() -> bool:
    return not missing()


def unavailable_reason() -> str:
    return (f"Dynamo's own planner needs its optional environment (missing: {', '.join(missing())}); "
            f"install it with: .venv/bin/pip install -r {REQUIREMENTS.relative_to(REQUIREMENTS.parents[2])}")


def _import_replay():
    """Dynamo's replay entry, with the AISimulate stand-ins importable and Dynamo's logs quiet."""
    if str(STUBS) not in sys.path:
        sys.path.append(str(STUBS))  # appended: a real AISimulate, if ever installed, wins
    os.environ.setdefault("DYN_LOG", "error")  # the planner logs every 5 s tick at info
    from dynamo.replay import run_trace_replay

    for name in ("dynamo", "dynamo.planner"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return run_trace_replay


@dataclass
class DynamoOwnPlanner:
    """Not a `scaler.policy.Policy`: it drives the replay itself (`scaler.replay.runner` calls
    `run_replay` for any policy that has one)."""

    target: str  # Dynamo's optimization_target: "load" or "throughput"
    profile: PerformanceProfile
    ttft_ms: float = 500.0
    itl_ms: float = 50.0
    interval_s: int = 5  # Dynamo's default load_adjustment_interval_seconds
    max_gpu_budget: int = 128  # Dynamo's default is 8 GPUs; our baselines cap at 64 replicas per pool
    context_length: int = CONTEXT_LENGTH
    name: str = ""

    def __post_init__(self) -> None:
        if self.target not in MODES:
            raise ValueError(f"target must be one of {MODES}, got {self.target!r}")
        self.name = self.name or f"dynamo-own-{self.target}"

    # the Policy surface, for code that only asks for a name and a first tick
    def initial_tick_s(self) -> float:
        return float(self.interval_s)

    def decide(self, obs):  # pragma: no cover - the engine never calls it (run_replay drives)
        raise TypeError(f"{self.name} runs Dynamo's own replay loop; use run_replay")

    def planner_config(self, report_dir: str) -> dict:
        cfg = {
            "optimization_target": self.target, "mode": "disagg", "backend": "mocker",
            "environment": "virtual", "pre_deployment_sweeping_mode": "none",
            "load_adjustment_interval_seconds": self.interval_s, "max_gpu_budget": self.max_gpu_budget,
            "min_endpoint": 1, "ttft_ms": self.ttft_ms, "itl_ms": self.itl_ms,
            # no listeners and no periodic reports inside a replay
            "control_api_port": 0, "live_dashboard_port": 0, "metric_reporting_prometheus_port": 0,
            "report_interval_hours": None, "report_output_dir": report_dir, "report_write_gzip_log": False,
        }
        if self.target == "load":
            # the thresholds scaler.replay.baselines.DynamoLoad uses: prefill up when a worker's
            # queue holds more than half the TTFT target of work at ISL 2000, down below 20 ms;
            # decode up above 80% KV use, down below 40%
            per_s = self.profile.prefill.throughput_per_gpu_at(2000.0)
            cfg.update(prefill_scale_up_queue_tokens=max(1, int(per_s * self.ttft_ms / 1000.0 * 0.5)),
                       prefill_scale_down_queue_tokens=int(per_s * 0.02),
                       decode_scale_up_kv_rate=80.0, decode_scale_down_kv_rate=40.0)
        else:
            cfg.update(ttft_ms=500.0, itl_ms=50.0)  # ignored by this target; the defaults avoid its warning
        return cfg

    def engine_args(self, config: EngineConfig, worker_type: str) -> dict:
        args = config.engine_args(worker_type)
        args["engine"]["max_model_len"] = self.context_length
        return args

    def run_replay(self, requests: list[Request], config: EngineConfig,
                   on_point: Callable[[TimelinePoint], None] | None = None) -> ReplayRun:
        run_trace_replay = _import_replay()
        offset_s = min((r.timestamp_ms for r in requests), default=0.0) / 1000.0
        with tempfile.TemporaryDirectory(prefix="dynamo-own-") as tmp:
            trace = write_mooncake(requests, Path(tmp) / "trace.jsonl")
            started = time.perf_counter()
            report = run_trace_replay(
                str(trace), prefill_engine_args=self.engine_args(config, "prefill"),
                decode_engine_args=self.engine_args(config, "decode"),
                num_prefill_workers=config.initial_prefill, num_decode_workers=config.initial_decode,
                trace_block_size=config.trace_block_size, router_mode=config.router_mode,
                sla_ttft_ms=config.ttft_ms, sla_itl_ms=config.itl_ms, planner_config=self.planner_config(tmp),
                capture_per_request=True,
                capture_planner_details=True,  # the lifecycle (GPU billing) comes with the details
            )
            wall = time.perf_counter() - started
        planner = report.planner
        if planner is None:
            raise RuntimeError("Dynamo's replay returned no planner details")
        per_request = [{**r, "arrival_time_ms": float(r["arrival_time_ms"]) + offset_s * 1000.0}
                       for r in (report.per_request or [])]
        lifecycle = [{**op, "at_ms": float(op.get("at_ms", 0.0)) + offset_s * 1000.0}
                     for op in planner.lifecycle_operations]
        timeline = _timeline(planner.ticks, per_request, offset_s)
        if on_point:
            for p in timeline:
                on_point(p)
        extra = {"dynamo_planner": {"target": self.target, "ticks": planner.total_ticks,
                                    "scaling_events": len(planner.scaling_events),
                                    "bootstrap": planner.metadata.get("bootstrap")}}
        return ReplayRun(self.name, dict(report.summary), per_request, lifecycle, timeline, wall,
                         config, extra, offset_s=offset_s)


def _timeline(ticks: list[dict], per_request: list[dict], offset_s: float) -> list[TimelinePoint]:
    """One point per planner tick, in trace time: workers from the tick's topology, the target
    it set, and arrivals and mean TTFT of the requests that arrived since the previous tick."""
    # by arrival alone: requests arriving together may lack a TTFT (never served), not comparable
    arrivals = sorted(((float(r["arrival_time_ms"]) / 1000.0, r.get("ttft_ms"), r.get("itl_ms"), r["input_length"])
                       for r in per_request), key=lambda a: a[0])
    out: list[TimelinePoint] = []
    prev, i = offset_s, 0
    for tick in ticks:
        t = float(tick["at_ms"]) / 1000.0 + offset_s
        batch = []
        while i < len(arrivals) and arrivals[i][0] <= t:
            batch.append(arrivals[i])
            i += 1
        ttfts = [b[1] for b in batch if b[1] is not None]
        itls = [b[2] for b in batch if b[2] is not None]
        topo = tick.get("topology") or {}
        decision = tick.get("runtime_decision") or {}
        out.append(TimelinePoint(
            t, len(batch) / (t - prev) if t > prev else 0.0,
            sum(b[3] for b in batch) / len(batch) if batch else None,
            sum(ttfts) / len(ttfts) if ttfts else None, sum(itls) / len(itls) if itls else None,
            _pool(topo, "prefill"), _pool(topo, "decode"), decision.get("target_prefill"), decision.get("target_decode"),
            "dynamo planner tick"))
        prev = t
    return out


def _pool(topology: dict, name: str) -> tuple[int, int, int]:
    p = topology.get(name) or {}
    return int(p.get("active_count", 0)), int(p.get("starting_count", 0)), int(p.get("draining_count", 0))


def register() -> None:
    """Add `dynamo-own-load` and `dynamo-own-throughput` to replay's policies, where the optional
    environment is installed (a replay plugin: `--plugin benchmarks.dynamo_planner.baseline`)."""
    from scaler.replay.policies import register_policy

    if not available():
        log.info("Dynamo's own planner is not registered: %s", unavailable_reason())
        return
    for target in MODES:
        register_policy(f"dynamo-own-{target}", lambda ctx, target=target: DynamoOwnPlanner(
            target, ctx.profile, ctx.ttft_ms, ctx.itl_ms))


register()
