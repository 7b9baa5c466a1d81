"""Prometheus instant-query clients (sync for the planner, async for the collector), and a
reader that evaluates a signal of a `SignalMapping` into labelled values. No side effects."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from external_metrics.signals import SignalMapping


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused the query."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class SignalValue:
    """One value of a signal for one service: namespace, metricLabels (dynamo_namespace,
    model, dgd, service), the value and the Prometheus evaluation time (Unix seconds)."""

    signal: str
    namespace: str
    labels: dict[str, str]
    value: float
    timestamp: float


def _parse(response: httpx.Response) -> list[Sample]:
    try:
        body = response.json()
    except ValueError:
        raise PrometheusError(f"Prometheus answered {response.status_code} with non-JSON: "
                              f"{response.text[:200]!r}") from None
    if not isinstance(body, dict):
        raise PrometheusError(f"Prometheus answered {response.status_code} with malformed JSON: "
                              f"{response.text[:200]!r}")
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"Prometheus answered {response.status_code}: "
                              f"{body.get('errorType', '')} {body.get('error', response.text[:200])}".strip())
    # a proxy or a broken upstream can answer "success" with any shape: that is an error, not data
    try:
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result", [])
        if kind == "vector":
            return [Sample(dict(r.get("metric") or {}), float(r["value"][1]), float(r["value"][0])) for r in result]
        if kind == "scalar":
            return [Sample({}, float(result[1]), float(result[0]))]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError(f"Prometheus answered malformed data ({type(exc).__name__}: {exc}): "
                              f"{response.text[:200]!r}") from None
    raise PrometheusError(f"unsupported result type {kind!r} (use an instant vector)")


def _finite(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if math.isfinite(s.value)]


class PrometheusClient:
    """Blocking client: `query(promql)` -> samples (NaN/Inf dropped unless `finite=False`)."""

    def __init__(self, url: str, timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)

    def query(self, promql: str, at: float | None = None, finite: bool = True) -> list[Sample]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            r = self._http.post("/api/v1/query", data=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {exc!r}") from exc
        samples = _parse(r)
        return _finite(samples) if finite else samples

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "PrometheusClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncPrometheusClient:
    def __init__(self, url: str, timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, headers=headers)

    async def query(self, promql: str, at: float | None = None, finite: bool = True) -> list[Sample]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            r = await self._http.post("/api/v1/query", data=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {exc!r}") from exc
        samples = _parse(r)
        return _finite(samples) if finite else samples

    async def close(self) -> None:
        await self._http.aclose()


def to_values(mapping: SignalMapping, signal: str, samples: list[Sample]) -> list[SignalValue]:
    out = []
    for s in samples:
        ns, labels = mapping.identity(s.labels)
        out.append(SignalValue(signal, ns, labels, s.value, s.timestamp))
    return out


def read_signal(client: PrometheusClient, mapping: SignalMapping, signal: str,
                where: dict[str, str] | None = None, window: str | None = None) -> list[SignalValue]:
    """Evaluate one signal now, e.g. for the planner:

        read_signal(client, mapping, "dynamo_ttft_seconds", {"namespace": "ns", "dgd": "llm"}, "60s")

    Raises PrometheusError; an empty list means no data (never a zero)."""
    return to_values(mapping, signal, client.query(mapping.render(signal, where, window)))
