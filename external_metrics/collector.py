"""Background collection: every interval, one PromQL query per signal for all services at
once, into the cache. Requests never query Prometheus themselves.

The queries, the parsing of their answers and the grouping by namespace run on a thread of
their own (its own event loop, where the Prometheus client lives): at 20,000 series a round
costs the CPU for a second, which on the serving loop would hold every read in flight for tens
of milliseconds at a time. Only the swap of each signal's finished values into the cache
happens on the serving loop, so a read sees one collection or the next, never a mix."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from external_metrics.cache import Cache
from external_metrics.metrics import ServerMetrics
from external_metrics.prom import AsyncPrometheusClient, PrometheusError, to_values
from external_metrics.signals import SignalMapping

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, mapping: SignalMapping, client: AsyncPrometheusClient, cache: Cache,
                 interval_s: float = 5.0, metrics: ServerMetrics | None = None, *, in_thread: bool = True) -> None:
        self.mapping, self.client, self.cache = mapping, client, cache
        self.interval_s = interval_s
        self.metrics = metrics
        self.rounds = 0
        self._queries = {name: mapping.render(name) for name in mapping.signals}
        self._failing: set[str] = set()
        self.in_thread = in_thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- on the collection loop -------------------------------------------------------------
    async def _fetch(self, name: str) -> tuple[float, object]:
        """(seconds, values grouped by namespace, or the PrometheusError) of one signal."""
        started = time.perf_counter()
        try:
            values = to_values(self.mapping, name, await self.client.query(self._queries[name]))
            result: object = (Cache.group(values), len(values))
        except PrometheusError as exc:
            result = exc
        return time.perf_counter() - started, result

    async def _fetch_all(self) -> list[tuple[float, object]]:
        return await asyncio.gather(*(self._fetch(n) for n in self._queries))

    def _start_thread(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="collector", daemon=True)
            self._thread.start()
            self._loop = loop
        return self._loop

    # -- on the serving loop ----------------------------------------------------------------
    def _apply(self, name: str, seconds: float, result: object) -> None:
        if self.metrics:
            self.metrics.prom_queries.labels(name).observe(seconds)
        if isinstance(result, PrometheusError):
            self.cache.fail(name, str(result))
            if self.metrics:
                self.metrics.prom_errors.labels(name).inc()
            if name not in self._failing:
                log.warning("collection failed", extra={"signal": name, "error": str(result)})
            self._failing.add(name)
            return
        by_namespace, series = result  # type: ignore[misc]
        self.cache.replace(name, by_namespace, series)
        if name in self._failing:
            self._failing.discard(name)
            log.info("collection recovered", extra={"signal": name, "series": series})

    async def collect_once(self) -> None:
        if self.in_thread:
            future = asyncio.run_coroutine_threadsafe(self._fetch_all(), self._start_thread())
            results = await asyncio.wrap_future(future)
        else:
            results = await self._fetch_all()
        for name, (seconds, result) in zip(self._queries, results):
            self._apply(name, seconds, result)
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

    async def close(self) -> None:
        """Close the Prometheus client (on the loop it was used on) and end the thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            await self.client.close()
            return
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.client.close(), loop))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(self._thread.join, 5)  # type: ignore[union-attr]
            loop.close()

