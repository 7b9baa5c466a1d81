"""The one place that maps scaling signals to PromQL.

Every signal is a PromQL template evaluated for all DGD services at once. Placeholders are
replaced textually (PromQL's own braces need no escaping):

- `{sel}`: label matchers without braces: the series must belong to a DGD (`dgd!=""`), plus
  the mapping's extra `matchers` and any `where` filter of the caller;
- `{by}`: the identity labels every result is grouped by (namespace, DGD, service, Dynamo
  namespace, model), under their configured Prometheus label names;
- `{window}`: the averaging window of rates and histogram means (a PromQL duration).

The defaults cover Dynamo's frontend (`dynamo_frontend_*`), real vLLM/SGLang workers
(`dynamo_component_kvstats_*`, newer `dynamo_component_gpu_cache_usage_percent`) and the mocker
(vLLM-style `vllm:*`). Override any of it from YAML (`SignalMapping.load`):

    labels: {dgd: label_nvidia_com_dynamo_graph_deployment_name, service: label_nvidia_com_dynamo_component}
    window: 2m
    matchers: 'job="dynamo"'
    signals:
      dynamo_queue_depth: {query: 'sum by ({by}) (my_queue{{sel}})'}
      dynamo_itl_seconds_p95: null        # drop a signal

This module has no side effects and needs only pydantic and PyYAML.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SIGNAL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")

IDENTITY = ("namespace", "dgd", "service", "dynamo_namespace", "model")
"""Logical identity of a series; every label except `namespace` goes into `metricLabels`."""


class MappingError(ValueError):
    pass


class LabelNames(BaseModel):
    """Prometheus label names that carry each identity field. The local test cluster attaches
    `namespace`, `dgd`, `service`; a real cluster gets them by relabelling the pod labels
    `nvidia.com/dynamo-graph-deployment-name` and `nvidia.com/dynamo-component`."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = "namespace"
    dgd: str = "dgd"
    service: str = "service"
    dynamo_namespace: str = "dynamo_namespace"
    model: str = "model"

    @field_validator("*")
    @classmethod
    def _label(cls, v: str) -> str:
        if not _LABEL_NAME.match(v):
            raise ValueError(f"{v!r} is not a Prometheus label name")
        return v

    def prom(self, logical: str) -> str:
        if logical not in IDENTITY:
            raise MappingError(f"unknown identity label {logical!r}; known: {', '.join(IDENTITY)}")
        return getattr(self, logical)


class Signal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="PromQL template with {sel}, {by} and optionally {window}")
    description: str = ""
    unit: str = ""
    windowed: bool = Field(False, description="the value is computed over {window}")

    @field_validator("query")
    @classmethod
    def _placeholders(cls, q: str) -> str:
        missing = [p for p in ("{sel}", "{by}") if p not in q]
        if missing:
            raise ValueError(f"query must contain {' and '.join(missing)} (got {q!r})")
        return q


# Worker gauges name the model `model_name` (vLLM); copy it into `model` where it is set.
def _model(expr: str) -> str:
    return f'label_replace({expr}, "model", "$1", "model_name", "(.+)")'


_KV_NAMES = ("dynamo_component_kvstats_gpu_cache_usage_percent|dynamo_component_gpu_cache_usage_percent|"
             "vllm:kv_cache_usage_perc|vllm:gpu_cache_usage_perc")
# Per worker KV usage in [0, 1]: active/total blocks where exported, else the usage gauge.
# Dropping __name__ from the gauges lets `or` keep one series per worker.
_KV_PER_WORKER = _model(
    "dynamo_component_kvstats_active_blocks{{sel}} / (dynamo_component_kvstats_total_blocks{{sel}} > 0)"
    f' or max without (__name__) ({{__name__=~"{_KV_NAMES}",{{sel}}}})'
)


def _window_mean(hist: str) -> str:
    return (f"sum by ({{by}}) (increase({hist}_sum{{{{sel}}}}[{{window}}])) / "
            f"(sum by ({{by}}) (increase({hist}_count{{{{sel}}}}[{{window}}])) > 0)")


def _p95(hist: str) -> str:
    return f"histogram_quantile(0.95, sum by ({{by}}, le) (rate({hist}_bucket{{{{sel}}}}[{{window}}])))"


_TTFT = "dynamo_frontend_time_to_first_token_seconds"
_ITL = "dynamo_frontend_inter_token_latency_seconds"

DEFAULT_SIGNALS: dict[str, Signal] = {
    "dynamo_queue_depth": Signal(
        description="Requests waiting, summed over the service's pods: the frontend's queued "
                    "requests (or inflight minus active), the workers' waiting requests.",
        unit="requests",
        query=("sum by ({by}) (dynamo_frontend_queued_requests{{sel}})"
               " or sum by ({by}) (dynamo_frontend_inflight_requests{{sel}} - dynamo_frontend_active_requests{{sel}})"
               " or sum by ({by}) (" + _model(
                   '{__name__=~"vllm:num_requests_waiting|dynamo_component_num_requests_waiting|'
                   'sglang:num_queue_reqs",{sel}}') + ")"),
    ),
    "dynamo_inflight_requests": Signal(
        description="Requests in flight (frontend), or running plus waiting (workers), summed; for "
                    "workers that export neither (the mocker's prefill workers), the requests their "
                    "generate endpoint holds.",
        unit="requests",
        query=("sum by ({by}) (dynamo_frontend_inflight_requests{{sel}})"
               " or sum by ({by}) (" + _model(
                   '{__name__=~"vllm:num_requests_running|vllm:num_requests_waiting|'
                   'dynamo_component_num_requests_running|dynamo_component_num_requests_waiting",{sel}}')
               + ")"
               # carries no model label: only where the engine gauges above found nothing
               ' or ignoring(model) sum by ({by}) (dynamo_component_inflight_requests{dynamo_endpoint="generate",{sel}})'),
    ),
    "dynamo_kv_cache_usage": Signal(
        description="KV-cache load in [0, 1] (active / total blocks), mean over the service's workers.",
        unit="ratio", query=f"avg by ({{by}}) ({_KV_PER_WORKER})"),
    "dynamo_kv_cache_usage_max": Signal(
        description="KV-cache load in [0, 1], the fullest worker of the service.",
        unit="ratio", query=f"max by ({{by}}) ({_KV_PER_WORKER})"),
    "dynamo_kv_cache_usage_sum": Signal(
        description="KV-cache load summed over the service's workers (workers' worth of KV in use): "
                    "the form for an HPA AverageValue target such as 700m per replica.",
        unit="ratio", query=f"sum by ({{by}}) ({_KV_PER_WORKER})"),
    "dynamo_kv_active_blocks": Signal(
        description="Active KV blocks summed over the service's workers (or as the frontend's router sees them).",
        unit="blocks",
        query=("sum by ({by}) (" + _model("dynamo_component_kvstats_active_blocks{{sel}}") + ")"
               " or sum by ({by}) (dynamo_frontend_worker_active_decode_blocks{{sel}})"),
    ),
    "dynamo_request_rate": Signal(
        description="Requests per second at the frontend over the window.",
        unit="requests/s", windowed=True,
        query="sum by ({by}) (rate(dynamo_frontend_requests_total{{sel}}[{window}]))"),
    "dynamo_ttft_seconds": Signal(
        description="Mean time to first token over the window.", unit="s", windowed=True,
        query=_window_mean(_TTFT)),
    "dynamo_ttft_seconds_p95": Signal(
        description="95th percentile time to first token over the window.", unit="s", windowed=True,
        query=_p95(_TTFT)),
    "dynamo_itl_seconds": Signal(
        description="Mean inter-token latency over the window.", unit="s", windowed=True,
        query=_window_mean(_ITL)),
    "dynamo_itl_seconds_p95": Signal(
        description="95th percentile inter-token latency over the window.", unit="s", windowed=True,
        query=_p95(_ITL)),
    "dynamo_input_sequence_tokens": Signal(
        description="Mean input sequence length (tokens) over the window.", unit="tokens", windowed=True,
        query=_window_mean("dynamo_frontend_input_sequence_tokens")),
    "dynamo_output_sequence_tokens": Signal(
        description="Mean output sequence length (tokens) over the window.", unit="tokens", windowed=True,
        query=_window_mean("dynamo_frontend_output_sequence_tokens")),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def duration_seconds(d: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", d))


class SignalMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: LabelNames = Field(default_factory=LabelNames)
    window: str = Field("1m", description="PromQL duration of {window}")
    matchers: str = Field("", description='extra PromQL label matchers for every series, e.g. job="dynamo"')
    signals: dict[str, Signal] = Field(default_factory=lambda: dict(DEFAULT_SIGNALS))

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if not _DURATION.match(v):
            raise ValueError(f"{v!r} is not a PromQL duration (e.g. 30s, 1m, 1m30s)")
        return v

    @model_validator(mode="after")
    def _names(self) -> "SignalMapping":
        bad = [n for n in self.signals if not SIGNAL_NAME.match(n)]
        if bad:
            raise ValueError(f"signal names must match {SIGNAL_NAME.pattern}: {bad}")
        if not self.signals:
            raise ValueError("the mapping has no signals")
        return self

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_overrides(cls, overrides: dict | None) -> "SignalMapping":
        """Defaults with `overrides` on top: scalar settings replace, `labels` merge by key,
        `signals.<name>` merges field by field over the default, `null` removes a signal."""
        data = dict(overrides or {})
        signals = {n: s.model_dump() for n, s in DEFAULT_SIGNALS.items()}
        for name, spec in (data.pop("signals", None) or {}).items():
            if spec is None:
                signals.pop(name, None)
            elif not isinstance(spec, dict):
                raise MappingError(f"signals.{name}: expected a mapping or null, got {type(spec).__name__}")
            else:
                signals[name] = {**signals.get(name, {}), **spec}
        try:
            return cls.model_validate({**data, "signals": signals})
        except ValidationError as exc:
            raise MappingError(str(exc)) from None

    @classmethod
    def load(cls, path: Path | str | None) -> "SignalMapping":
        if path is None:
            return cls()
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise MappingError(f"{path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise MappingError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise MappingError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_overrides(data)
        except MappingError as exc:
            raise MappingError(f"{path}: {exc}") from None

    # -- rendering -------------------------------------------------------------------------
    @property
    def group_by(self) -> str:
        return ", ".join(self.labels.prom(n) for n in IDENTITY)

    def selector(self, where: dict[str, str] | None = None) -> str:
        parts = [f'{self.labels.dgd}!=""']
        if self.matchers.strip():
            parts.append(self.matchers.strip().strip(","))
        for logical, value in (where or {}).items():
            parts.append(f'{self.labels.prom(logical)}="{_escape(value)}"')
        return ",".join(parts)

    def render(self, name: str, where: dict[str, str] | None = None, window: str | None = None) -> str:
        """PromQL for signal `name`, for every service, or only those matching `where`
        (logical identity label -> value, e.g. {"namespace": "ns", "dgd": "llm"})."""
        try:
            sig = self.signals[name]
        except KeyError:
            raise MappingError(f"unknown signal {name!r}; known: {', '.join(sorted(self.signals))}") from None
        if window is not None and not _DURATION.match(window):
            raise MappingError(f"{window!r} is not a PromQL duration")
        return (sig.query.replace("{sel}", self.selector(where))
                .replace("{by}", self.group_by)
                .replace("{window}", window or self.window))

    def identity(self, prom_labels: dict[str, str]) -> tuple[str, dict[str, str]]:
        """(Kubernetes namespace, metricLabels) of a result series."""
        labels = {n: prom_labels.get(self.labels.prom(n), "") for n in IDENTITY if n != "namespace"}
        return prom_labels.get(self.labels.namespace, ""), labels

    def window_seconds(self) -> int:
        return int(duration_seconds(self.window))
