"""Background collection: every interval, one PromQL query per signal for all services at
once, into the cache. Requests never query Prometheus themselves."""

from __future__ import annotations

import asyncio
import logging
import time

from external_metrics.cache import Cache
from external_metrics.metrics import ServerMetrics
from external_metrics.prom import AsyncPrometheusClient, PrometheusError, to_values
from external_metrics.signals import SignalMapping

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, mapping: SignalMapping, client: AsyncPrometheusClient, cache: Cache,
                 interval_s: float = 5.0, metrics: ServerMetrics | None = None) -> None:
        self.mapping, self.client, self.cache = mapping, client, cache
        self.interval_s = interval_s
        self.metrics = metrics
        self.rounds = 0
        self._queries = {name: mapping.render(name) for name in mapping.signals}
        self._failing: set[str] = set()

    async def _collect(self, name: str) -> None:
        started = time.perf_counter()
        try:
            samples = await self.client.query(self._queries[name])
        except PrometheusError as exc:
            self.cache.fail(name, str(exc))
            if self.metrics:
                self.metrics.prom_errors.labels(name).inc()
            if name not in self._failing:
                log.warning("collection failed", extra={"signal": name, "error": str(exc)})
            self._failing.add(name)
            return
        finally:
            if self.metrics:
                self.metrics.prom_queries.labels(name).observe(time.perf_counter() - started)
        self.cache.update(name, to_values(self.mapping, name, samples))
        if name in self._failing:
            self._failing.discard(name)
            log.info("collection recovered", extra={"signal": name, "series": len(samples)})

    async def collect_once(self) -> None:
        await asyncio.gather(*(self._collect(n) for n in self._queries))
        self.rounds += 1
        if self.metrics:
            self.metrics.collections.inc()

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until `stop` is set; rounds start every `interval_s` (at once if one overran)."""
        log.info("collector started", extra={"signals": len(self._queries), "interval_s": self.interval_s,
                                             "prometheus": self.client.url})
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.collect_once()
            except Exception:  # a bug must not stop collection; values then go stale and 503
                log.exception("collection round failed")
            delay = max(0.0, self.interval_s - (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
