"""`dynamo-scaling planner --config FILE`: the predictive planner against a live deployment."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from adapter.settings import (
    CommaList,
    LeaderElectionSettings,
    SettingsError,
    add_flags,
    given_flags,
    load,
    split_commas,
)

ENV = "DYNAMO_PLANNER_"


class PlannerSettings(LeaderElectionSettings):
    """The planner command's flags; every one also DYNAMO_PLANNER_<FIELD>. (The Prometheus
    connection and the signal mapping belong to the config file, which reads its own variables.)"""

    model_config = SettingsConfigDict(env_prefix=ENV, extra="forbid")

    config: Path | None = Field(None, description="YAML config (deployment, planner, profile); required")
    kubeconfig: Path | None = Field(None, description="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    prometheus_url: str = Field("http://127.0.0.1:9090", description="Prometheus base URL")
    api_port: int = Field(8085, ge=1, le=65535, description="port of the control API")
    bind_address: str = Field("127.0.0.1", description="address of the control API")
    advisory: bool = Field(False, description="compute and publish decisions without writing them")
    static_token_file: Path | None = Field(
        None, description="accept this one bearer token with full access instead of Kubernetes tokens (local use)")
    tls_cert_file: Path | None = Field(None, description="serving certificate of the API (PEM), re-read when it "
                                                         "changes; default: self-signed at start")
    tls_private_key_file: Path | None = Field(None, description="key of tls_cert_file")
    tls_sans: CommaList = Field(default_factory=list,
                                description="extra DNS names or IPs of the self-signed certificate (flag "
                                            "--tls-san, repeatable)")
    insecure_http: bool = Field(False, description="serve the API over plain HTTP instead of HTTPS (bearer tokens "
                                                   "travel in the clear)")
    api_docs: bool = Field(False, description="serve /docs, /redoc and /openapi.json (to callers who may read "
                                              "the planner)")
    token_audience: CommaList = Field(
        default_factory=list, description="accept only Kubernetes tokens issued for these audiences (default: the "
                                          "API server's own), e.g. from `kubectl create token --audience` (flag repeatable)")
    max_body_bytes: int = Field(65536, ge=1024, description="largest request body accepted; larger ones get 413 "
                                                            "before authentication")
    leader_election: bool = Field(False, description="hold a Lease; only the leader plans and writes, every replica "
                                                     "serves the API (run two replicas safely)")
    leader_election_lease: str = Field("dynamo-scaling-planner", description="name of the Lease")

    @field_validator("tls_sans", "token_audience", mode="before")
    @classmethod
    def _split(cls, v):
        return split_commas(v)

    @model_validator(mode="after")
    def _check(self) -> PlannerSettings:
        if self.config is None:
            raise ValueError("--config is required")
        if bool(self.tls_cert_file) != bool(self.tls_private_key_file):
            raise ValueError("--tls-cert-file and --tls-private-key-file go together")
        if self.insecure_http and self.tls_cert_file:
            raise ValueError("--insecure-http and --tls-cert-file contradict each other")
        return self


FLAG_NAMES = {"tls_sans": "--tls-san"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("planner", help="predictive SLA planner for one DynamoGraphDeployment",
                              description="Forecasts load and sets prefill/decode replicas through DGDSA /scale. "
                                          f"Every flag can also be set as {ENV}<FLAG> in the environment "
                                          "(lists comma-separated); flags win.")
    add_flags(p, PlannerSettings, ENV, FLAG_NAMES)
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> PlannerSettings:
    return load(PlannerSettings, given_flags(args, PlannerSettings), ENV, FLAG_NAMES)


def run(args: argparse.Namespace) -> int:
    from dynamo_scaling.kube import api_client
    from scaler.control.auth import KubernetesAuthorizer, StaticTokenAuthorizer
    from scaler.service import config as cfgmod
    from scaler.service.service import LOOPBACK, Options, PlannerService, read_token_file

    try:
        opt = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = cfgmod.load(opt.config)
    except cfgmod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api = api_client(str(opt.kubeconfig) if opt.kubeconfig else None)
    static = os.environ.get(ENV + "STATIC_TOKEN")  # from a Secret; never on the command line
    if opt.static_token_file or static:
        authorizer = StaticTokenAuthorizer(read_token_file(opt.static_token_file) if opt.static_token_file
                                           else static.strip())
    else:
        def authorizer(namespace: str, name: str) -> KubernetesAuthorizer:  # fleet mode: one per DGD
            return KubernetesAuthorizer(api, namespace, name, audiences=tuple(opt.token_audience))

        if cfg.deployment is not None:
            authorizer = authorizer(cfg.deployment.namespace, cfg.deployment.name)
    if opt.insecure_http and opt.bind_address not in LOOPBACK:
        print(f"warning: the control API serves plain HTTP on {opt.bind_address} (--insecure-http): "
              "bearer tokens cross the network unencrypted", file=sys.stderr)
    opts = Options(opt.prometheus_url, opt.api_port, opt.bind_address, opt.advisory,
                   tls_cert_file=opt.tls_cert_file, tls_key_file=opt.tls_private_key_file,
                   tls_sans=tuple(opt.tls_sans), insecure_http=opt.insecure_http, api_docs=opt.api_docs,
                   max_body_bytes=opt.max_body_bytes)
    leadership = None
    if opt.leader_election:
        from scaler.service.leadership import Leadership

        leadership = Leadership.elect(api, opt.leader_election_namespace, opt.leader_election_lease,
                                      lease_s=opt.leader_election_lease_duration,
                                      renew_deadline_s=opt.leader_election_renew_deadline,
                                      retry_s=opt.leader_election_retry_period)
        leadership.start()
    svc = PlannerService(cfg, api, opts, authorizer, leadership=leadership)
    try:
        svc.serve()
    finally:
        if leadership is not None:
            leadership.stop()
    return 0
