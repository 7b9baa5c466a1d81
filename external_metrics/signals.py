"""The one place that maps scaling signals to PromQL.

Every signal is a PromQL template evaluated for all DGD services at once. Placeholders are
replaced textually (PromQL's own braces need no escaping):

- `{sel}`: label matchers without braces for the raw series, plus the mapping's extra
  `matchers` and the caller's `where` filters that apply to raw series;
- `{join}`: attaches the DGD identity to a per-pod expression (empty where the series carry it);
  the expression must not hold two series with the same labels once `__name__` is gone, so
  several metric names of one pod are summed `without (__name__)` first;
- `{by}`: the identity labels every result is grouped by, under their Prometheus label names;
- `{window}`: the averaging window of rates and histogram means (a PromQL duration).

Two ways to tell which DGD and service a series belongs to (`preset`):

- `dynamo` (default): only what a stock cluster has. Dynamo's PodMonitors add Prometheus' own
  target labels (`namespace`, `pod`, `container`, `job`); Dynamo's workers label their series
  `dynamo_namespace` (`<k8s-namespace>-<dgd>`, exported with `_` for `-`) and
  `dynamo_component`. Every pod's series get those two labels from one identity series of the
  same pod (`{join}`): a worker's `dynamo_component_inflight_requests{dynamo_endpoint="generate"}`,
  or for a frontend the KV router's `dynamo_component_router_requests_total` (component
  `frontend`). The DGD is the Dynamo namespace without `<k8s-namespace>-`; the service is the
  Dynamo component, renamed through `services` (e.g. `{backend: decode}`) where given.
- `dgd-labels`: the series carry `dgd` and `service` labels (PodMonitors that relabel the pod
  labels `nvidia.com/dynamo-graph-deployment-name` and `nvidia.com/dynamo-component`).

The defaults cover Dynamo's frontend (`dynamo_frontend_*`), real vLLM/SGLang workers
(`dynamo_component_kvstats_*`, newer `dynamo_component_gpu_cache_usage_percent`) and the mocker
(vLLM-style `vllm:*`). Override any of it from YAML (`SignalMapping.load`):

    preset: dgd-labels
    labels: {dgd: label_nvidia_com_dynamo_graph_deployment_name, service: label_nvidia_com_dynamo_component}
    window: 2m
    matchers: 'job="dynamo"'
    signals:
      dynamo_queue_depth: {query: 'sum by ({by}) (my_queue{{sel}}{join})'}
      dynamo_itl_seconds_p95: null        # drop a signal

This module has no side effects and needs only pydantic and PyYAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dynamo_scaling.yaml_file import YamlFileError, read_mapping

SIGNAL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")

IDENTITY = ("namespace", "dgd", "service", "dynamo_namespace", "model")
"""Logical identity of a series; every label except `namespace` goes into `metricLabels`."""
FILTERS = IDENTITY + ("dynamo_component",)
"""What `where` may filter on."""
FRONTEND = "frontend"
"""The Dynamo component name given to a frontend pod's series (the frontend has none of its own)."""


class MappingError(ValueError):
    pass


class LabelNames(BaseModel):
    """Prometheus label names that carry each identity field. `dgd` and `service` exist only
    where PodMonitors relabel the pod labels `nvidia.com/dynamo-graph-deployment-name` and
    `nvidia.com/dynamo-component` (preset `dgd-labels`); `pod` and `dynamo_component` are
    what preset `dynamo` joins on."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = "namespace"
    dgd: str = "dgd"
    service: str = "service"
    dynamo_namespace: str = "dynamo_namespace"
    model: str = "model"
    dynamo_component: str = "dynamo_component"
    pod: str = "pod"

    @field_validator("*")
    @classmethod
    def _label(cls, v: str) -> str:
        if not _LABEL_NAME.match(v):
            raise ValueError(f"{v!r} is not a Prometheus label name")
        return v

    def prom(self, logical: str) -> str:
        if logical not in FILTERS:
            raise MappingError(f"unknown identity label {logical!r}; known: {', '.join(FILTERS)}")
        return getattr(self, logical)


class Signal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="PromQL template with {sel}, {by} and optionally {join}, {window}")
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
_KV_PER_WORKER = "(" + _model(
    "dynamo_component_kvstats_active_blocks{{sel}} / (dynamo_component_kvstats_total_blocks{{sel}} > 0)"
    f' or max without (__name__) ({{__name__=~"{_KV_NAMES}",{{sel}}}})'
) + "){join}"


def _window_mean(hist: str) -> str:
    return (f"sum by ({{by}}) (increase({hist}_sum{{{{sel}}}}[{{window}}]){{join}}) / "
            f"(sum by ({{by}}) (increase({hist}_count{{{{sel}}}}[{{window}}]){{join}}) > 0)")


def _p95(hist: str) -> str:
    return f"histogram_quantile(0.95, sum by ({{by}}, le) (rate({hist}_bucket{{{{sel}}}}[{{window}}]){{join}}))"


_TTFT = "dynamo_frontend_time_to_first_token_seconds"
_ITL = "dynamo_frontend_inter_token_latency_seconds"

DEFAULT_SIGNALS: dict[str, Signal] = {
    "dynamo_queue_depth": Signal(
        description="Requests waiting, summed over the service's pods: the frontend's queued "
                    "requests (or inflight minus active), the workers' waiting requests.",
        unit="requests",
        query=("sum by ({by}) (dynamo_frontend_queued_requests{{sel}}{join})"
               " or sum by ({by}) ((dynamo_frontend_inflight_requests{{sel}} - dynamo_frontend_active_requests{{sel}}){join})"
               " or sum by ({by}) ((" + _model(
                   'sum without (__name__) ({__name__=~"vllm:num_requests_waiting|dynamo_component_num_requests_waiting|'
                   'sglang:num_queue_reqs",{sel}})') + "){join})"),
    ),
    "dynamo_inflight_requests": Signal(
        description="Requests in flight (frontend), or running plus waiting (workers), summed; for "
                    "workers that export neither (the mocker's prefill workers), the requests their "
                    "generate endpoint holds.",
        unit="requests",
        query=("sum by ({by}) (dynamo_frontend_inflight_requests{{sel}}{join})"
               " or sum by ({by}) ((" + _model(
                   'sum without (__name__) ({__name__=~"vllm:num_requests_running|vllm:num_requests_waiting|'
                   'dynamo_component_num_requests_running|dynamo_component_num_requests_waiting",{sel}})')
               + "){join})"
               # carries no model label: only where the engine gauges above found nothing
               ' or ignoring(model) sum by ({by}) (dynamo_component_inflight_requests{dynamo_endpoint="generate",{sel}}{join})'),
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
        query=("sum by ({by}) ((" + _model("dynamo_component_kvstats_active_blocks{{sel}}") + "){join})"
               " or sum by ({by}) (dynamo_frontend_worker_active_decode_blocks{{sel}}{join})"),
    ),
    "dynamo_request_rate": Signal(
        description="Requests per second at the frontend over the window.",
        unit="requests/s", windowed=True,
        query="sum by ({by}) (rate(dynamo_frontend_requests_total{{sel}}[{window}]){join})"),
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


def _regex_alternatives(values: list[str]) -> str:
    return "|".join(re.escape(v) for v in dict.fromkeys(values))


def dynamo_namespace_forms(namespace: str, dgd: str) -> list[str]:
    """The Dynamo namespace the operator gives DGD `dgd` in `namespace` (`DYN_NAMESPACE`), and
    the form Dynamo's metrics carry it in (`-` exported as `_`)."""
    dyn = f"{namespace}-{dgd}"
    return [dyn, dyn.replace("-", "_")]


def dgd_of(namespace: str, dynamo_namespace: str) -> str:
    """The DGD whose pods run in `dynamo_namespace`, or "" when it is not `<namespace>-<dgd>`
    (e.g. the global namespace `dynamo`). DGD names have no `_`, so `_` was a `-`."""
    for prefix in (f"{namespace}-", f"{namespace.replace('-', '_')}_"):
        if namespace and dynamo_namespace.startswith(prefix) and len(dynamo_namespace) > len(prefix):
            return dynamo_namespace[len(prefix):].replace("_", "-")
    return ""


class SignalMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["dynamo", "dgd-labels"] = Field(
        "dynamo", description="dynamo: DGD and service from Dynamo's own labels (a stock cluster); "
                              "dgd-labels: from `dgd`/`service` labels that PodMonitor relabelling adds")
    labels: LabelNames = Field(default_factory=LabelNames)
    window: str = Field("1m", description="PromQL duration of {window}")
    matchers: str = Field("", description='extra PromQL label matchers for every series, e.g. job="dynamo"')
    services: dict[str, str] = Field(
        default_factory=dict, description="preset dynamo: Dynamo component -> the `service` label to report "
                                          "(e.g. backend: decode); components not listed keep their name")
    worker_identity: str = Field(
        'dynamo_component_inflight_requests{dynamo_endpoint="generate"}',
        description="preset dynamo: a series every worker pod exports with its Dynamo namespace and component")
    frontend_identity: str = Field(
        "dynamo_component_router_requests_total",
        description="preset dynamo: a series every frontend pod exports with its Dynamo namespace")
    signals: dict[str, Signal] = Field(default_factory=lambda: dict(DEFAULT_SIGNALS))

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if not _DURATION.match(v):
            raise ValueError(f"{v!r} is not a PromQL duration (e.g. 30s, 1m, 1m30s)")
        return v

    @field_validator("worker_identity", "frontend_identity")
    @classmethod
    def _series(cls, v: str) -> str:
        if not re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$", v.strip()):
            raise ValueError(f"{v!r} is not a series selector such as name{{label=\"value\"}}")
        return v.strip()

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
            data = read_mapping(path)
        except YamlFileError as exc:
            raise MappingError(str(exc)) from None
        try:
            return cls.from_overrides(data)
        except MappingError as exc:
            raise MappingError(f"{path}: {exc}") from None

    # -- rendering -------------------------------------------------------------------------
    @property
    def group_by(self) -> str:
        names = IDENTITY if self.preset == "dgd-labels" else (
            "namespace", "dynamo_namespace", "dynamo_component", "model")
        return ", ".join(self.labels.prom(n) for n in names)

    def components(self, service: str) -> list[str]:
        """Dynamo components reported as `service` (preset dynamo)."""
        return [c for c, s in self.services.items() if s == service] or (
            [] if service in self.services else [service])

    def _matcher(self, logical: str, values: list[str]) -> str:
        name = self.labels.prom(logical)
        if len(values) == 1:
            return f'{name}="{_escape(values[0])}"'
        return f'{name}=~"{_escape(_regex_alternatives(values))}"'

    def selector(self, where: dict[str, str] | None = None) -> str:
        """Matchers of the raw series (`{sel}`)."""
        where = where or {}
        unknown = [k for k in where if k not in FILTERS]
        if unknown:
            raise MappingError(f"unknown identity label {unknown[0]!r}; known: {', '.join(FILTERS)}")
        if self.preset == "dgd-labels":
            parts = [f'{self.labels.dgd}!=""']
            raw = dict(where)
        else:
            parts = [f'{self.labels.pod}!=""']
            raw = {k: v for k, v in where.items() if k in ("namespace", "model")}
        if self.matchers.strip():
            parts.append(self.matchers.strip().strip(","))
        parts += [self._matcher(k, [v]) for k, v in raw.items()]
        return ",".join(parts)

    def _with(self, series: str, matchers: list[str]) -> str:
        name, _, rest = series.partition("{")
        inner = rest.rstrip("}").strip().strip(",")
        return f"{name}{{{','.join(p for p in [inner, *matchers] if p)}}}"

    def pod_identity(self, where: dict[str, str] | None = None) -> str:
        """One series per pod (value 1) carrying its Dynamo namespace and component, filtered by
        `where` (preset dynamo)."""
        where = where or {}
        lb = self.labels
        common = [f'{lb.pod}!=""']
        if self.matchers.strip():
            common.append(self.matchers.strip().strip(","))
        if "namespace" in where:
            common.append(self._matcher("namespace", [where["namespace"]]))
        if "dgd" in where:
            if "namespace" not in where:
                raise MappingError("filtering by dgd needs the namespace: the Dynamo namespace is <namespace>-<dgd>")
            common.append(self._matcher("dynamo_namespace", dynamo_namespace_forms(where["namespace"], where["dgd"])))
        if "dynamo_namespace" in where:
            common.append(self._matcher("dynamo_namespace", [where["dynamo_namespace"]]))
        wanted: list[str] | None = None
        if "service" in where:
            wanted = self.components(where["service"])
        if "dynamo_component" in where:
            wanted = [c for c in (wanted if wanted is not None else [where["dynamo_component"]])
                      if c == where["dynamo_component"]]
        by = f"{lb.namespace}, {lb.pod}, {lb.dynamo_namespace}, {lb.dynamo_component}"
        parts = []
        workers = [c for c in wanted if c != FRONTEND] if wanted is not None else None
        if workers is None or workers:
            comp = [self._matcher("dynamo_component", workers)] if workers else []
            parts.append(f"group by ({by}) ({self._with(self.worker_identity, common + comp)})")
        if wanted is None or FRONTEND in wanted:
            parts.append(f"group by ({by}) (label_replace({self._with(self.frontend_identity, common)}, "
                         f'"{lb.dynamo_component}", "{FRONTEND}", "", ""))')
        if not parts:  # nothing can match: keep the query valid and empty
            nothing = lb.pod + '=""'
            parts.append(f"group by ({by}) ({self._with(self.worker_identity, [*common, nothing])})")
        # a pod that exports both (a worker with an embedded router) is the worker
        return f" or on ({lb.namespace}, {lb.pod}) ".join(parts)

    def join(self, where: dict[str, str] | None = None) -> str:
        if self.preset == "dgd-labels":
            return ""
        lb = self.labels
        return (f" * on ({lb.namespace}, {lb.pod}) group_left ({lb.dynamo_namespace}, {lb.dynamo_component}) "
                f"({self.pod_identity(where)})")

    def with_defaults(self, signals: dict[str, Signal]) -> "SignalMapping":
        """This mapping plus those of `signals` it does not define itself (a signals file that
        names one replaces its query): how a consumer adds the inputs only it reads."""
        extra = {n: s for n, s in signals.items() if n not in self.signals}
        return self.model_copy(update={"signals": {**self.signals, **extra}}) if extra else self

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
                .replace("{join}", self.join(where))
                .replace("{by}", self.group_by)
                .replace("{window}", window or self.window))

    def identity(self, prom_labels: dict[str, str]) -> tuple[str, dict[str, str]]:
        """(Kubernetes namespace, metricLabels) of a result series."""
        lb = self.labels
        ns = prom_labels.get(lb.namespace, "")
        if self.preset == "dgd-labels":
            return ns, {n: prom_labels.get(lb.prom(n), "") for n in IDENTITY if n != "namespace"}
        dyn = prom_labels.get(lb.dynamo_namespace, "")
        comp = prom_labels.get(lb.dynamo_component, "")
        return ns, {"dgd": dgd_of(ns, dyn), "service": self.services.get(comp, comp),
                    "dynamo_namespace": dyn, "model": prom_labels.get(lb.model, "")}

    def window_seconds(self) -> int:
        return int(duration_seconds(self.window))
