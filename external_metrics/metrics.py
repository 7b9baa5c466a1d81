"""The metrics server's own Prometheus metrics (`dynamo_metrics_server_*`), in a private registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from external_metrics.cache import Cache

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _CacheCollector(Collector):
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def collect(self):
        age = GaugeMetricFamily("dynamo_metrics_server_cache_age_seconds",
                                "Seconds since the signal was last collected successfully", labels=["signal"])
        series = GaugeMetricFamily("dynamo_metrics_server_cache_series",
                                   "Series held for the signal", labels=["signal"])
        fresh = GaugeMetricFamily("dynamo_metrics_server_cache_fresh",
                                  "1 when the signal is within the staleness bound", labels=["signal"])
        for name in self.cache.signals:
            a = self.cache.age(name)
            age.add_metric([name], float("inf") if a is None else a)
            series.add_metric([name], self.cache.state(name).series)
            fresh.add_metric([name], 1.0 if self.cache.fresh(name) else 0.0)
        yield from (age, series, fresh)


class ServerMetrics:
    def __init__(self, cache: Cache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "dynamo_metrics_server_request_duration_seconds", "Time to answer a request",
            ["interface", "route", "code"], buckets=_FAST, registry=self.registry)
        self.prom_queries = Histogram(
            "dynamo_metrics_server_prometheus_query_duration_seconds", "Prometheus query latency",
            ["signal"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.prom_errors = Counter(
            "dynamo_metrics_server_prometheus_errors", "Failed Prometheus queries", ["signal"],
            registry=self.registry)
        self.collections = Counter(
            "dynamo_metrics_server_collections", "Completed collection rounds", registry=self.registry)
        self.auth_failures = Counter(
            "dynamo_metrics_server_auth_failures", "Rejected requests", ["reason"], registry=self.registry)
        self.registry.register(_CacheCollector(cache))
