"""The in-memory cache between the collector and the servers.

Each signal keeps the values of its last successful collection, indexed by namespace, with the
time of that collection. Reads older than the staleness bound fail with `Unavailable`: a value
that cannot be vouched for is an error, never a zero."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from external_metrics.prom import SignalValue
from external_metrics.selectors import EVERYTHING, Selector


class UnknownSignal(LookupError):
    pass


class Unavailable(RuntimeError):
    """No fresh data for the signal (never collected, Prometheus down, or stale)."""


class NoSeries(LookupError):
    """Fresh data, but no series matches the namespace and selector."""


@dataclass
class SignalState:
    by_namespace: dict[str, list[SignalValue]] = field(default_factory=dict)
    collected_at: float | None = None  # wall time of the last successful collection
    error: str | None = None  # last collection error, cleared on success
    error_at: float | None = None
    series: int = 0
    # (namespace, label key) -> label value -> values, built on first use for each collection
    index: dict[tuple[str, str], dict[str, list[SignalValue]]] = field(default_factory=dict)


class Cache:
    def __init__(self, signals: list[str], staleness_s: float, clock: Callable[[], float] = time.time) -> None:
        self.staleness_s = staleness_s
        self.clock = clock
        self._states: dict[str, SignalState] = {s: SignalState() for s in signals}

    @property
    def signals(self) -> list[str]:
        return list(self._states)

    @staticmethod
    def group(values: list[SignalValue]) -> dict[str, list[SignalValue]]:
        """`values` by namespace, the form `replace` takes (the collector builds it off the serving loop)."""
        by_ns: dict[str, list[SignalValue]] = {}
        for v in values:
            by_ns.setdefault(v.namespace, []).append(v)
        return by_ns

    def update(self, signal: str, values: list[SignalValue], at: float | None = None) -> None:
        self.replace(signal, self.group(values), len(values), at)

    def replace(self, signal: str, by_namespace: dict[str, list[SignalValue]], series: int,
                at: float | None = None) -> None:
        """Swap in a whole collection of `signal` at once (call from the serving loop only)."""
        st = self._states[signal]
        st.by_namespace, st.collected_at, st.series = by_namespace, at if at is not None else self.clock(), series
        st.index = {}
        st.error = st.error_at = None

    def fail(self, signal: str, error: str, at: float | None = None) -> None:
        st = self._states[signal]
        st.error, st.error_at = error, at if at is not None else self.clock()

    def state(self, signal: str) -> SignalState:
        try:
            return self._states[signal]
        except KeyError:
            raise UnknownSignal(signal) from None

    def age(self, signal: str) -> float | None:
        st = self.state(signal)
        return None if st.collected_at is None else max(0.0, self.clock() - st.collected_at)

    def fresh(self, signal: str) -> bool:
        age = self.age(signal)
        return age is not None and age <= self.staleness_s

    @staticmethod
    def _indexed(st: SignalState, namespace: str, key: str) -> dict[str, list[SignalValue]]:
        index = st.index.get((namespace, key))
        if index is None:
            index = {}
            for v in st.by_namespace.get(namespace, []):
                if key in v.labels:
                    index.setdefault(v.labels[key], []).append(v)
            st.index[(namespace, key)] = index
        return index

    def lookup(self, signal: str, namespace: str, selector: Selector = EVERYTHING) -> tuple[list[SignalValue], float]:
        """Values of `signal` in `namespace` matching `selector`, and their collection time."""
        st = self.state(signal)
        age = self.age(signal)
        if age is None:
            why = f": {st.error}" if st.error else ""
            raise Unavailable(f"no data collected yet for {signal}{why}")
        if age > self.staleness_s:
            why = f"; last error: {st.error}" if st.error else ""
            raise Unavailable(f"data for {signal} is {age:.0f} s old (staleness bound {self.staleness_s:g} s){why}")
        candidates = st.by_namespace.get(namespace, [])
        if selector:
            if len(candidates) > 16:  # narrow by a pinned label first: not every value is matched
                for key, value in selector.equalities().items():
                    narrowed = self._indexed(st, namespace, key).get(value, [])
                    if len(narrowed) < len(candidates):
                        candidates = narrowed
            candidates = [v for v in candidates if selector.matches(v.labels)]
        if not candidates:
            raise NoSeries(f"no series of {signal} in namespace {namespace!r}"
                           + (f" match {str(selector)!r}" if selector else ""))
        return candidates, st.collected_at  # type: ignore[return-value]
