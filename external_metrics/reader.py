"""Reading signals from the cache for a namespace and a label selector, with the errors every
interface maps to its own status (HTTP metav1.Status, KEDA JSON, gRPC)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from external_metrics.cache import Cache, NoSeries, Unavailable, UnknownSignal
from external_metrics.prom import SignalValue
from external_metrics.selectors import SelectorError, parse
from external_metrics.signals import SignalMapping

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ReadError(Exception):
    """code: HTTP status; reason: metav1.Status reason."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ReadError):
    code, reason = 400, "BadRequest"


class NotFound(ReadError):
    code, reason = 404, "NotFound"


class ServiceUnavailable(ReadError):
    code, reason = 503, "ServiceUnavailable"


@dataclass(frozen=True)
class Reading:
    signal: str
    namespace: str
    values: list[SignalValue]
    collected_at: float
    window_s: int | None

    @property
    def total(self) -> float:
        return sum(v.value for v in self.values)


class Reader:
    def __init__(self, mapping: SignalMapping, cache: Cache) -> None:
        self.mapping, self.cache = mapping, cache
        self._lower = {n.lower(): n for n in mapping.signals}

    @property
    def signals(self) -> list[str]:
        return list(self.mapping.signals)

    def resolve(self, metric: str) -> str:
        name = self._lower.get(metric.lower())
        if name is None:
            raise NotFound(f'metric "{metric}" is not served here; known: {", ".join(self.mapping.signals)}')
        return name

    def read(self, namespace: str, metric: str, selector: str | None) -> Reading:
        if not _NAMESPACE.match(namespace) or len(namespace) > 63:
            raise BadRequest(f'"{namespace}" is not a valid namespace name')
        name = self.resolve(metric)
        try:
            sel = parse(selector)
        except SelectorError as exc:
            raise BadRequest(f"invalid label selector: {exc}") from None
        try:
            values, at = self.cache.lookup(name, namespace, sel)
        except UnknownSignal:
            raise NotFound(f'metric "{metric}" is not served here') from None
        except Unavailable as exc:
            raise ServiceUnavailable(str(exc)) from None
        except NoSeries as exc:
            raise NotFound(str(exc)) from None
        window = self.mapping.window_seconds() if self.mapping.signals[name].windowed else None
        return Reading(name, namespace, values, at, window)
