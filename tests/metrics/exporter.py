"""A tiny exporter process for tests: serves series with Dynamo's metric names and values
chosen by the test (prometheus-client, on 127.0.0.1), scraped by the real Prometheus.

Run as `python exporter.py PORT STATE_FILE`. STATE_FILE is JSON
`{"series": [{"name": ..., "labels": {...}, "value": ..., "type": "gauge"|"counter"|"histogram"}]}`
(counters are named without `_total`; histograms take `"observations"`, each a value or
`[value, count]`, and `"buckets"`). It is
re-read on every scrape, so a test changes values by rewriting the file atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                    REGISTRY)
from prometheus_client.registry import Collector


class StateCollector(Collector):
    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self):
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        families: dict[str, object] = {}
        for s in state.get("series", []):
            name, kind, labels = s["name"], s.get("type", "gauge"), s.get("labels", {})
            keys = sorted(labels)
            fam = families.get(name)
            if fam is None:
                cls = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily,
                       "histogram": HistogramMetricFamily}[kind]
                fam = families[name] = cls(name, f"test series {name}", labels=keys)
            values = [str(labels[k]) for k in keys]
            if kind == "histogram":
                # an observation is a value, or [value, count]: a long-running histogram in a few bytes
                obs = [(float(o[0]), int(o[1])) if isinstance(o, list) else (float(o), 1)
                       for o in s.get("observations", [])]
                buckets = [(repr(float(le)), sum(n for o, n in obs if o <= le)) for le in s["buckets"]]
                buckets.append(("+Inf", sum(n for _, n in obs)))
                fam.add_metric(values, buckets, sum(o * n for o, n in obs))
            else:
                fam.add_metric(values, float(s["value"]))
        yield from families.values()


def main() -> None:
    port, state_file = int(sys.argv[1]), Path(sys.argv[2])
    for c in list(REGISTRY._collector_to_names):  # only the test's series
        REGISTRY.unregister(c)
    REGISTRY.register(StateCollector(state_file))

    # Always the classic text format: prometheus-client's OpenMetrics output rewrites ':' in
    # names such as vllm:num_requests_waiting, which the real exporters keep.
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = generate_latest(REGISTRY)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
