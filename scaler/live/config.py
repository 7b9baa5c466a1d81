"""The planner service's configuration file (YAML), validated with clear field errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scaler.planner.config import PlannerConfig

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
    """Prometheus label names that carry the Kubernetes namespace, DGD and service of a series."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = "namespace"
    dgd: str = "dgd"
    service: str = "service"


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: DeploymentRef
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    profile_file: Path | None = Field(None, description="performance profile (JSON or Dynamo profiler npz)")
    state_configmap: str | None = Field(None, pattern=NAME, description="ConfigMap holding overrides")
    labels: MetricLabels = Field(default_factory=MetricLabels)
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
    try:
        cfg = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    if cfg.profile_file and not cfg.profile_file.is_absolute():
        cfg = cfg.model_copy(update={"profile_file": path.parent / cfg.profile_file})
    return cfg
