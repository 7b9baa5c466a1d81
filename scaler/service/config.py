"""The planner service's configuration file (YAML), validated with clear field errors."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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

    deployment: DeploymentRef
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    profile_file: Path | None = Field(None, description="performance profile (JSON or Dynamo profiler npz)")
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

    @property
    def configmap(self) -> str:
        return self.state_configmap or f"{self.deployment.name}-planner-state"


class ConfigError(ValueError):
    pass


def load(path: Path) -> ServiceConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    # the chart passes the shared signals file and Prometheus credentials through the environment
    if os.environ.get(ENV_PREFIX + "SIGNALS_FILE") and not data.get("signals_file"):
        data["signals_file"] = os.environ[ENV_PREFIX + "SIGNALS_FILE"]
    data["prometheus"] = PrometheusConnection.env_overrides(data.get("prometheus"), ENV_PREFIX + "PROMETHEUS_")
    try:
        cfg = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
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
