"""The planner service's configuration file (YAML), validated with clear field errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dynamo_scaling.yaml_file import YamlFileError, read_mapping
from external_metrics.prom import PrometheusConnection
from external_metrics.signals import MappingError, SignalMapping
from scaler.planner.config import PlannerConfig

ENV_PREFIX = "DYNAMO_PLANNER_"

NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class DeploymentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="DynamoGraphDeployment name")
    namespace: str = Field(pattern=NAME)
    prefill_service: str = Field(min_length=1, description="DGD service key of the prefill pool")
    decode_service: str = Field(min_length=1, description="DGD service key of the decode pool")
    frontend_service: str | None = Field(None, description="DGD service key of the frontend (for its metrics)")
    request: str | None = Field(None, pattern=NAME, description=(
        "DynamoGraphDeploymentRequest in the same namespace whose spec.sla (ttft, itl in ms) sets the "
        "SLA targets; a change of the request replaces an SLA set through the API"))


class FleetConfig(BaseModel):
    """Fleet mode: every DynamoScalingPolicy in these namespaces is planned by this one process."""

    model_config = ConfigDict(extra="forbid")

    namespaces: list[Annotated[str, Field(pattern=NAME)]] = Field(min_length=1, description=(
        "namespaces whose DynamoScalingPolicies are planned"))
    gpu_budget: int | None = Field(None, ge=1, description=(
        "GPUs shared by every planned DGD, by the policies' spec.priority; none: no shared budget"))
    resync_s: float = Field(30, ge=1, description="how often the list of policies is re-read, seconds")

    @field_validator("namespaces")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        dup = sorted({n for n in v if v.count(n) > 1})
        if dup:
            raise ValueError(f"listed more than once: {', '.join(dup)}")
        return v


class MetricLabels(BaseModel):
    """Prometheus label names that carry the Kubernetes namespace, DGD and service of a series
    (`dgd` and `service` only with the signal mapping's `dgd-labels` preset), and, with the
    default preset, the Dynamo components of the two pools: the component a worker's series
    carry in `dynamo_component`. Dynamo's workers name them `prefill` and `backend` unless the
    worker's `--endpoint` says otherwise (Dynamo's own planner assumes the same)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = "namespace"
    dgd: str = "dgd"
    service: str = "service"
    prefill_component: str = Field("prefill", min_length=1)
    decode_component: str = Field("backend", min_length=1)


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: DeploymentRef | None = Field(None, description="single-DGD mode: the one DGD planned")
    fleet: FleetConfig | None = Field(None, description="fleet mode: every policy in the listed namespaces")
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    profile_file: Path | None = Field(None, description="performance profile (JSON or Dynamo profiler npz); "
                                      "none: fitted online from observations; 'bundled': the mocker's")
    state_configmap: str | None = Field(None, pattern=NAME, description="ConfigMap holding overrides")
    labels: MetricLabels = Field(default_factory=MetricLabels)
    signals_file: Path | None = Field(None, description=(
        "the metrics server's signal mapping (YAML), so the planner reads the numbers HPA and KEDA read; "
        f"also {ENV_PREFIX}SIGNALS_FILE"))
    signals: dict | None = Field(None, description=(
        "the signal mapping inline (the signals file's schema), e.g. {preset: dgd-labels}; not with signals_file"))
    prometheus: PrometheusConnection = Field(default_factory=PrometheusConnection, description=(
        f"how to reach Prometheus behind authentication; every field also {ENV_PREFIX}PROMETHEUS_<FIELD>"))
    liveness_intervals: int = Field(3, ge=1, le=1000, description=(
        "/healthz fails when the planning loop has completed no tick, successful or not, for this "
        "many planning intervals (plus any back-off after failed ticks)"))

    @model_validator(mode="after")
    def _one_mode(self) -> ServiceConfig:
        if (self.deployment is None) == (self.fleet is None):
            raise ValueError("give exactly one of `deployment` (one DGD) and `fleet` (every policy in namespaces), "
                             + ("not both" if self.deployment else "found neither"))
        if self.fleet is not None and self.state_configmap:
            raise ValueError("state_configmap is for `deployment` mode; in fleet mode each DGD's state is its policy")
        return self

    @property
    def configmap(self) -> str:
        return self.state_configmap or f"{self.deployment.name}-planner-state"

    def for_deployment(self, ref: DeploymentRef) -> ServiceConfig:
        """This configuration narrowed to one DGD of a fleet (what a DeploymentPlanner reads)."""
        return self.model_copy(update={"deployment": ref, "fleet": None})


class ConfigError(ValueError):
    pass


def load(path: Path) -> ServiceConfig:
    try:
        data = read_mapping(path)
    except YamlFileError as exc:
        raise ConfigError(str(exc)) from None
    # the chart passes the shared signals file and Prometheus credentials through the environment
    if os.environ.get(ENV_PREFIX + "SIGNALS_FILE") and not data.get("signals_file"):
        data["signals_file"] = os.environ[ENV_PREFIX + "SIGNALS_FILE"]
    data["prometheus"] = PrometheusConnection.env_overrides(data.get("prometheus"), ENV_PREFIX + "PROMETHEUS_")
    try:
        cfg = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(": ".join(x for x in (".".join(str(p) for p in e["loc"]), e["msg"]) if x)
                             for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    if cfg.profile_file and not cfg.profile_file.is_absolute():
        cfg = cfg.model_copy(update={"profile_file": path.parent / cfg.profile_file})
    if cfg.signals_file and cfg.signals is not None:
        raise ConfigError(f"{path}: give signals_file or signals, not both")
    if cfg.signals_file and not cfg.signals_file.is_absolute():
        cfg = cfg.model_copy(update={"signals_file": path.parent / cfg.signals_file})
    try:  # a mapping the planner cannot use stops it here, not at its first tick
        SignalMapping.load(cfg.signals_file) if cfg.signals_file else SignalMapping.from_overrides(cfg.signals)
    except MappingError as exc:
        raise ConfigError(f"{path}: {'signals_file' if cfg.signals_file else 'signals'}: {exc}") from None
    return cfg
