"""Recorded frontend series in a real Prometheus: a trace played through the series Dynamo's
frontend exports (request counter, ISL/OSL histograms) as a scrape every few seconds would have
seen them, written as OpenMetrics and backfilled with `promtool tsdb create-blocks-from
openmetrics` into a Prometheus data directory before it starts, so an hour of history exists at
once. Import as `from recorded import ...` from tests in this directory."""

from __future__ import annotations

import bisect
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dynamo_scaling.traces import Request

ISL_BUCKETS = (50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
OSL_BUCKETS = (10, 25, 50, 100, 250, 500, 1000, 2000)


@dataclass(frozen=True)
class Frontend:
    """One frontend pod of DGD `dgd` in `namespace`, with the labels a PodMonitor gives its
    series (and `dgd`/`service`, which the dgd-labels preset reads)."""

    namespace: str
    dgd: str
    pod: str

    def labels(self) -> dict[str, str]:
        return {"namespace": self.namespace, "pod": self.pod, "container": "main", "dgd": self.dgd,
                "service": "Frontend"}


def _labels(d: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}"


def openmetrics(plays: list[tuple[Frontend, list[Request]]], t0: float, first: float, last: float,
                scrape_s: float = 5.0) -> str:
    """The series of each frontend pod as scraped every `scrape_s` from `first` to `last` (Unix
    s), its requests at `t0 + timestamp`: the counter counts a request when it arrives, the
    histograms observe its prompt and answer lengths then."""
    times = [first + i * scrape_s for i in range(int(math.floor((last - first) / scrape_s)) + 1)]
    families: dict[str, tuple[str, list[str]]] = {
        "dynamo_frontend_requests": ("counter", []),
        "dynamo_component_router_requests": ("counter", []),
        "dynamo_frontend_input_sequence_tokens": ("histogram", []),
        "dynamo_frontend_output_sequence_tokens": ("histogram", []),
    }
    for fe, reqs in plays:
        arrivals = sorted(t0 + r.timestamp_ms / 1000.0 for r in reqs)
        by_time = sorted(reqs, key=lambda r: r.timestamp_ms)
        base = fe.labels()
        counter = families["dynamo_frontend_requests"][1]
        ident = families["dynamo_component_router_requests"][1]
        req_labels = _labels({**base, "model": "m", "endpoint": "completions", "request_type": "stream",
                              "status": "success"})
        ident_labels = _labels({**base, "dynamo_namespace": f"{fe.namespace}-{fe.dgd}", "dynamo_component": "router",
                                "dynamo_endpoint": "generate"})
        for t in times:
            n = bisect.bisect_right(arrivals, t)
            counter.append(f"dynamo_frontend_requests_total{req_labels} {n} {t:.3f}")
            ident.append(f"dynamo_component_router_requests_total{ident_labels} {n} {t:.3f}")
        for name, edges, length in (("dynamo_frontend_input_sequence_tokens", ISL_BUCKETS, lambda r: r.input_length),
                                    ("dynamo_frontend_output_sequence_tokens", OSL_BUCKETS, lambda r: r.output_length)):
            lines = families[name][1]
            h_labels = {**base, "model": "m"}
            series: dict[str, list[str]] = {}
            counts, total, seen = [0] * (len(edges) + 1), 0, 0
            for t in times:
                upto = bisect.bisect_right(arrivals, t)
                for r in by_time[seen:upto]:  # requests arrived since the last scrape
                    v = length(r)
                    counts[bisect.bisect_left(edges, v)] += 1
                    total += v
                seen = upto
                cumulative = 0
                for i, le in enumerate((*edges, math.inf)):
                    cumulative += counts[i]
                    le_text = "+Inf" if le == math.inf else f"{float(le)}"
                    series.setdefault(le_text, []).append(
                        f"{name}_bucket{_labels({**h_labels, 'le': le_text})} {cumulative} {t:.3f}")
                series.setdefault("_count", []).append(f"{name}_count{_labels(h_labels)} {seen} {t:.3f}")
                series.setdefault("_sum", []).append(f"{name}_sum{_labels(h_labels)} {total} {t:.3f}")
            for s in series.values():
                lines.extend(s)
    out = []
    for name, (kind, lines) in families.items():
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def backfill(text: str, data_dir: Path, workdir: Path) -> None:
    """Blocks of `text` (OpenMetrics) into `data_dir`, where Prometheus finds them on start."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian: apt-get install prometheus)"
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "recorded.om"
    src.write_text(text)
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
                   check=True, capture_output=True, timeout=300)


def recorded_prometheus(workdir: Path, namespace: str, reqs: list[Request], end: float, duration_s: float):
    """A real Prometheus (not yet started) holding `reqs` as they reached two frontend pods of DGD
    `llama` in `namespace` (alternately) in the `duration_s` before `end`, and a third of them
    through the frontend of another DGD, `other`, in the same namespace."""
    from devcluster.prometheus import Prometheus

    t0 = end - duration_s
    fe = [Frontend(namespace, "llama", "llama-frontend-0"), Frontend(namespace, "llama", "llama-frontend-1"),
          Frontend(namespace, "other", "other-frontend-0")]
    text = openmetrics([(fe[0], reqs[0::2]), (fe[1], reqs[1::2]), (fe[2], reqs[::3])], t0, t0 - 60, end + 60)
    prom = Prometheus(workdir / "prometheus")
    backfill(text, prom.data_dir, workdir)
    return prom
