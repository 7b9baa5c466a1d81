"""One what-if from start to end: read the window from Prometheus, rebuild the trace, replay it
under the current settings and the proposed ones, and say what it found and how long it took.
Shared by `dynamo-scaling what-if` and `POST /v1/what-if`."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from dynamo_scaling.traces import Request, write_mooncake
from external_metrics.prom import PrometheusConnection
from external_metrics.signals import SignalMapping
from scaler.planner.config import PlannerConfig
from scaler.profile import PerformanceProfile
from scaler.whatif.compare import Pools, compare
from scaler.whatif.observe import NoTraffic, RangeReader, Window, read_traffic
from scaler.whatif.rebuild import rebuild

INSTALL = "pip install 'dynamo-scaling[replay]'"
HOW = ("every request the frontend counted is replayed, none sampled and time not compressed: per step its "
       "count at uniformly random times within the step, its prompt and answer lengths drawn from the step's "
       "ISL/OSL histogram buckets (uniform within a bucket)")


def replay_missing() -> str | None:
    """None when Dynamo's replay engine can be imported, else what to install."""
    try:
        import dynamo._core  # noqa: F401  the replay extra's engine
    except ImportError as exc:
        return f"the replay engine is not installed ({exc}); {INSTALL}"
    return None


@dataclass(frozen=True)
class Source:
    """Where a deployment's observed traffic is: its Prometheus and how its series are found."""

    prometheus_url: str
    namespace: str
    dgd: str
    mapping: SignalMapping
    connection: PrometheusConnection | None = None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def observed_trace(source: Source, window: Window, seed: int = 0) -> tuple[list[Request], list[str]]:
    reader = RangeReader(source.prometheus_url, source.connection)
    try:
        traffic = read_traffic(reader, source.mapping, source.namespace, source.dgd, window)
    finally:
        reader.close()
    requests = rebuild(traffic, seed)
    if not requests:
        raise NoTraffic(f"the frontend of DGD {source.namespace}/{source.dgd} counted no requests between "
                        f"{_iso(window.start_s)} and {_iso(window.end_s)}: nothing to replay")
    return requests, traffic.notes


def what_if(source: Source, window: Window, profile: PerformanceProfile, current: PlannerConfig,
            proposed: PlannerConfig, pools: Pools, seed: int = 0, trace_out: Path | None = None) -> dict:
    started = time.perf_counter()
    requests, notes = observed_trace(source, window, seed)
    read_s = time.perf_counter() - started
    if trace_out is not None:
        write_mooncake(requests, trace_out)
    result = compare(requests, profile, current, proposed, pools)
    replay_s = result.pop("replay_seconds")
    n = len(requests)
    return {
        "deployment": {"namespace": source.namespace, "name": source.dgd},
        "window": {"start": _iso(window.start_s), "end": _iso(window.end_s), "seconds": window.steps * window.step_s,
                   "step_s": window.step_s},
        "requests": n,
        "trace": {"seed": seed, "mean_isl": sum(r.input_length for r in requests) / n,
                  "mean_osl": sum(r.output_length for r in requests) / n, "how": HOW, "notes": notes},
        **result,
        "timings": {"prometheus_seconds": read_s, "replay_seconds": replay_s,
                    "total_seconds": time.perf_counter() - started},
    }
