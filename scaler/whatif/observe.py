"""Read a deployment's recent traffic from Prometheus: three range queries (request count per
step, and the per-step increase of the prompt and answer length histograms), through the metrics
server's signal mapping so the what-if finds a DGD's series exactly as the planner and HPA do.

The request count is the mapping's `dynamo_request_rate` signal with the step as its window; the
two histograms are queries of this module (`whatif_isl_buckets`, `whatif_osl_buckets`) rendered
by the same mapping, so a signals file that defines signals of those names replaces them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx

from external_metrics.prom import PrometheusConnection, PrometheusError
from external_metrics.signals import Signal, SignalMapping
from scaler.whatif.rebuild import ObservedTraffic

ISL, OSL = "whatif_isl_buckets", "whatif_osl_buckets"
_BUCKETS = "sum by ({by}, le) (increase(%s_bucket{{sel}}[{window}]){join})"
HISTOGRAMS = {
    ISL: Signal(query=_BUCKETS % "dynamo_frontend_input_sequence_tokens",
                description="prompt tokens per request, by histogram bucket, increase per step"),
    OSL: Signal(query=_BUCKETS % "dynamo_frontend_output_sequence_tokens",
                description="generated tokens per request, by histogram bucket, increase per step"),
}
RATE = "dynamo_request_rate"


class NoTraffic(RuntimeError):
    """Prometheus holds no series of the deployment's frontend: no data, which is not zero."""


@dataclass(frozen=True)
class Window:
    end_s: float    # Unix time
    length_s: float
    step_s: float

    @property
    def steps(self) -> int:
        return max(1, int(round(self.length_s / self.step_s)))

    @property
    def start_s(self) -> float:
        return self.end_s - self.steps * self.step_s


def _duration(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class RangeReader:
    """`query_range` against Prometheus with the connection settings the planner uses."""

    def __init__(self, url: str, connection: PrometheusConnection | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.connection = connection or PrometheusConnection()
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, **self.connection.client_options())

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[tuple[dict, dict[float, float]]]:
        """[(labels, {time: value})] of a range query; NaN and infinite values left out."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": _duration(step_s)}
        try:
            r = self._http.post("/api/v1/query_range", data=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(self.connection.explain(self.url, error=exc)
                                  or f"Prometheus at {self.url} unreachable: {exc!r}") from exc
        why = self.connection.explain(self.url, status=r.status_code)
        if why:
            raise PrometheusError(why)
        try:
            body = r.json()
        except ValueError:
            raise PrometheusError(f"Prometheus answered {r.status_code} with non-JSON: {r.text[:200]!r}") from None
        if r.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error", r.text[:200]) if isinstance(body, dict) else r.text[:200]
            raise PrometheusError(f"Prometheus answered {r.status_code}: {err}")
        try:
            data = body["data"]
            if data.get("resultType") != "matrix":
                raise PrometheusError(f"unexpected result type {data.get('resultType')!r} of a range query")
            out = []
            for series in data["result"]:
                values = {float(t): float(v) for t, v in series["values"]}
                out.append((dict(series.get("metric") or {}),
                            {t: v for t, v in values.items() if math.isfinite(v)}))
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PrometheusError(f"Prometheus answered malformed data ({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        self._http.close()


def read_traffic(reader: RangeReader, mapping: SignalMapping, namespace: str, dgd: str,
                 window: Window) -> ObservedTraffic:
    """The frontend's counts of DGD `dgd` in `namespace` over `window`. Step i covers
    (start + i*step, start + (i+1)*step]; Prometheus evaluates each at its end."""
    m = mapping.with_defaults(HISTOGRAMS)
    where = {"namespace": namespace, "dgd": dgd}
    step = _duration(window.step_s)
    ends = [window.start_s + (i + 1) * window.step_s for i in range(window.steps)]
    first, last = ends[0], ends[-1]

    def series(signal: str) -> list[tuple[dict, dict[float, float]]]:
        return reader.query_range(m.render(signal, where, step), first, last, window.step_s)

    rate = series(RATE)
    if not rate:
        raise NoTraffic(f"Prometheus has no request counter ({RATE}) of the frontend of DGD {namespace}/{dgd} "
                        f"between {_iso(window.start_s)} and {_iso(window.end_s)}")
    counts = []
    for t in ends:
        vals = [v for _, values in rate for v in [_near(values, t)] if v is not None]
        counts.append(sum(vals) * window.step_s if vals else 0.0)

    def hists(signal: str) -> list[dict[float, float]]:
        out: list[dict[float, float]] = [{} for _ in ends]
        for labels, values in series(signal):
            try:
                le = float(labels.get("le", "nan"))
            except ValueError:
                continue
            if math.isnan(le):
                continue
            for i, t in enumerate(ends):
                v = _near(values, t)
                if v is not None:
                    out[i][le] = out[i].get(le, 0.0) + max(0.0, v)
        return out

    notes = []
    gaps = sum(1 for t in ends if all(_near(v, t) is None for _, v in rate))
    if gaps:
        notes.append(f"{gaps} of {len(ends)} steps have no request counter sample (replayed as no traffic)")
    return ObservedTraffic(window.step_s, counts, hists(ISL), hists(OSL), window.start_s, notes)


def _near(values: dict[float, float], t: float) -> float | None:
    v = values.get(t)
    if v is None:
        for k in values:  # Prometheus' step times are start + k*step, printed to the millisecond
            if abs(k - t) < 0.002:
                return values[k]
    return v


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
