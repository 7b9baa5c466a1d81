"""Settings of `dynamo-scaling metrics-server`: every flag is also `DYNAMO_METRICS_<FLAG>` in the
environment (flags win). Lists are comma-separated in both."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from external_metrics.prom import PrometheusConnection

ENV_PREFIX = "DYNAMO_METRICS_"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    prometheus_url: str = Field("http://127.0.0.1:9090", description="Prometheus base URL")
    prometheus_timeout: float = Field(5.0, gt=0, description="seconds per Prometheus query")
    prometheus_bearer_token_file: Path | None = Field(
        None, description="file holding a bearer token for Prometheus, re-read on every query (rotation)")
    prometheus_username: str | None = Field(None, description="basic-auth user for Prometheus")
    prometheus_password_file: Path | None = Field(None, description="file holding the basic-auth password")
    prometheus_ca_file: Path | None = Field(None, description="CA bundle (PEM) of Prometheus' serving certificate")
    prometheus_cert_file: Path | None = Field(None, description="client certificate (PEM) for Prometheus (mutual TLS)")
    prometheus_key_file: Path | None = Field(None, description="key of --prometheus-cert-file")
    prometheus_headers: str | None = Field(None, description="extra headers for Prometheus, 'Name: value' comma-separated "
                                                             "(e.g. X-Scope-OrgID: team-a)")
    interval: float = Field(2.0, gt=0, description="seconds between collections (one query per signal); "
                                                   "freshness is bounded by it plus the scrape interval")
    staleness: float = Field(30.0, gt=0, description="seconds after which values are unavailable (503)")
    signals_file: Path | None = Field(None, description="YAML overrides of the signal -> PromQL mapping")
    window: str | None = Field(None, description="PromQL window of rates and means (default from the mapping, 1m)")

    bind_address: str = Field("127.0.0.1", description="address of every listener; set it to listen elsewhere")
    secure_port: int = Field(6443, ge=0, le=65535, description="TLS port of the aggregated API (0: off)")
    http_port: int = Field(0, ge=0, le=65535, description="plain-HTTP port for probes and /metrics (0: off)")
    http_serves_api: bool = Field(False, description="also serve the external-metrics API and KEDA metrics-api on "
                                                     "the plain-HTTP port, to anyone who reaches it (only behind a "
                                                     "network boundary you trust)")
    grpc_port: int = Field(6000, ge=0, le=65535, description="KEDA external-scaler gRPC port (0: off)")

    tls_cert_file: Path | None = Field(None, description="serving certificate (PEM); default: self-signed at start")
    tls_private_key_file: Path | None = Field(None, description="key of --tls-cert-file")
    tls_sans: CommaList = Field(default_factory=list,
                                description="extra DNS names / IPs of the self-signed certificate")
    grpc_tls: bool = Field(False, description="serve gRPC over TLS with the serving certificate")
    grpc_client_ca_file: Path | None = Field(None, description="require gRPC client certificates signed by this CA")
    grpc_insecure: bool = Field(False, description="serve gRPC beyond loopback without client certificates: "
                                                   "anyone who reaches the port reads every namespace's metrics")

    kubeconfig: Path | None = Field(None, description="kubeconfig for the authentication ConfigMap and "
                                                      "SubjectAccessReviews (default: in-cluster, if any)")
    requestheader_client_ca_file: Path | None = Field(
        None, description="front-proxy CA (default: kube-system/extension-apiserver-authentication)")
    requestheader_allowed_names: CommaList = Field(default_factory=list,
                                                   description="allowed front-proxy certificate CNs (empty: any)")
    requestheader_username_headers: CommaList = Field(default_factory=lambda: ["X-Remote-User"])
    requestheader_group_headers: CommaList = Field(default_factory=lambda: ["X-Remote-Group"])
    requestheader_extra_headers_prefix: CommaList = Field(default_factory=lambda: ["X-Remote-Extra-"])
    requestheader_refresh: float = Field(
        30.0, gt=0, le=3600, description="seconds between re-reads of the front-proxy CA and names (rotation)")
    authorization: Literal["auto", "subjectaccessreview", "none"] = Field(
        "auto", description="authorize callers with SubjectAccessReviews (auto: when the cluster is reachable)")

    keda_token: str | None = Field(None, description="bearer token required on /keda/ (or X-API-KEY)")
    keda_token_file: Path | None = Field(None, description="file holding the /keda/ token")

    @field_validator("tls_sans", "requestheader_allowed_names", "requestheader_username_headers",
                     "requestheader_group_headers", "requestheader_extra_headers_prefix", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if bool(self.tls_cert_file) != bool(self.tls_private_key_file):
            raise ValueError("--tls-cert-file and --tls-private-key-file go together")
        if not (self.secure_port or self.http_port or self.grpc_port):
            raise ValueError("every listener is off: give --secure-port, --http-port or --grpc-port")
        ports = [p for p in (self.secure_port, self.http_port, self.grpc_port) if p]
        if len(ports) != len(set(ports)):
            raise ValueError(f"listeners need distinct ports, got {ports}")
        if self.grpc_port and not self.grpc_client_ca_file and not self.grpc_insecure \
                and self.bind_address not in LOOPBACK:
            raise ValueError(f"the gRPC port on {self.bind_address} authenticates callers only by TLS client "
                             "certificates: give --grpc-client-ca-file (KEDA's TriggerAuthentication holds the "
                             "client certificate), or --grpc-insecure to accept any caller, or --grpc-port=0")
        try:
            self.prometheus_connection()
        except ValidationError as exc:
            raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
        if self.staleness < self.interval:
            raise ValueError(f"--staleness ({self.staleness:g}) must be at least --interval ({self.interval:g})")
        return self

    def prometheus_connection(self) -> PrometheusConnection:
        """How to reach Prometheus; errors name the flags."""
        return PrometheusConnection(
            bearer_token_file=self.prometheus_bearer_token_file, username=self.prometheus_username,
            password_file=self.prometheus_password_file, ca_file=self.prometheus_ca_file,
            cert_file=self.prometheus_cert_file, key_file=self.prometheus_key_file,
            headers=self.prometheus_headers or {}, style="flag")

    def token(self) -> str | None:
        if self.keda_token_file:
            return self.keda_token_file.read_text().strip() or None
        return self.keda_token
