"""Settings of `dynamo-scaling adapter`: one pydantic model read from flags, the environment
(`DYNAMO_ADAPTER_<FIELD>`) and an optional YAML or JSON file (`--config-file`), in that order of
precedence. Values are read only when the command runs, so `--help` works whatever the
environment holds, and a bad value is reported with the flag, variable or file key that gave it.

Also the small helpers that turn such a model into argparse flags; the planner's CLI uses them too.
"""

from __future__ import annotations

import argparse
import os
import socket
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "DYNAMO_ADAPTER_"
CommaList = Annotated[list[str], NoDecode]


class LeaderElectionSettings(BaseSettings):
    """Leader election on a Lease (adapter.leader), the same settings for the adapter and the planner;
    a component sets its own default Lease name."""

    leader_election: bool = Field(False, description="hold a Lease; only the leader writes (run two replicas "
                                                     "safely)")
    leader_election_namespace: str = Field("default", description="namespace of the Lease")
    leader_election_lease: str = Field("dynamo-scaling-adapter", description="name of the Lease")
    leader_election_lease_duration: float = Field(
        15.0, gt=0, description="seconds: a standby takes the lease after seeing it unrenewed this long")
    leader_election_renew_deadline: float = Field(
        10.0, gt=0, description="seconds: a leader that has not renewed for this long stops writing; below the "
                                "lease duration")
    leader_election_retry_period: float = Field(
        2.0, gt=0, description="seconds between tries to take or renew the lease; below the renew deadline")

    @model_validator(mode="after")
    def _check_periods(self) -> LeaderElectionSettings:
        retry, deadline, lease = (self.leader_election_retry_period, self.leader_election_renew_deadline,
                                  self.leader_election_lease_duration)
        if not retry < deadline < lease:  # else a cut-off leader could still write once a standby took over
            raise ValueError("leader election needs --leader-election-retry-period < --leader-election-renew-deadline"
                             f" < --leader-election-lease-duration (got {retry:g} < {deadline:g} < {lease:g})")
        return self


class Settings(LeaderElectionSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    config_file: Path | None = Field(None, description="YAML or JSON file of these settings (keys as the field "
                                                       "names); flags and environment win over it")
    namespace: CommaList = Field(default_factory=list, description="watch these namespaces (flag repeatable, "
                                                                   "env comma-separated); empty: all namespaces")
    all_namespaces: bool = Field(False, description="watch every namespace, whatever `namespace` says elsewhere")
    kubeconfig: Path | None = Field(None, description="kubeconfig file (default: in-cluster config)")
    bind_address: str = Field("127.0.0.1", description="address of the metrics and health listeners")
    metrics_port: int = Field(8080, ge=1, le=65535, description="port of /metrics")
    health_port: int = Field(8081, ge=1, le=65535, description="port of /healthz and /readyz")
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", min_length=1,
                          max_length=100,
                          description="this replica's name: the Lease holder, and the suffix of the field manager "
                                      "(dynamo-scaling-adapter/<identity>) on everything it writes; default "
                                      "<hostname>-<pid>")
    resync_period: float = Field(10.0, gt=0, description="seconds between re-runs of every reconcile from the "
                                                         "controller's watch caches")
    webhook_port: int = Field(0, ge=0, le=65535, description="serve the conversion (/convert) and validating "
                                                             "admission (/validate) webhooks over HTTPS on this "
                                                             "port; 0 = off")
    webhook_bind_address: str = Field("0.0.0.0", description="address of the webhooks; the API server must "
                                                             "reach it")
    webhook_cert_file: Path | None = Field(None, description="serving certificate of the webhooks (PEM)")
    webhook_key_file: Path | None = Field(None, description="key of webhook_cert_file")
    webhook_exempt_users: CommaList = Field(
        default_factory=list, description="users (e.g. system:serviceaccount:<ns>:<sa>) that may edit adapted "
                                          "replicas on the DGD directly, besides this process's own identity (flag "
                                          "--webhook-exempt-user, repeatable)")

    @field_validator("namespace", "webhook_exempt_users", mode="before")
    @classmethod
    def _split(cls, v):
        return split_commas(v)

    @field_validator("identity")
    @classmethod
    def _printable(cls, v: str) -> str:
        if not v.isprintable():
            raise ValueError("must be printable characters (it goes into the field manager)")
        return v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.webhook_port and not (self.webhook_cert_file and self.webhook_key_file):
            raise ValueError("--webhook-port needs --webhook-cert-file and --webhook-key-file")
        return self

    @property
    def namespaces(self) -> list[str]:
        """The namespaces to watch; empty means all."""
        return [] if self.all_namespaces else [n for n in self.namespace if n]

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))  # YAML also reads JSON
        return tuple(sources)


# -- turning a settings model into flags, and its errors into messages ------------------------------

def split_commas(v):
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    return v


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(p: argparse.ArgumentParser, model: type[BaseSettings], env_prefix: str,
              names: Mapping[str, str] | None = None, skip: tuple[str, ...] = ()) -> None:
    """One flag per field, all defaulting to None (= not given) so that nothing is read or
    converted while the parser is built: the model does that when the command runs. `names`
    renames a field's flag (a list field's flag is repeatable)."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        ann = field.annotation
        default = field.get_default(call_default_factory=False) if field.default_factory is None else None
        shown = "" if default in (None, "", []) else f"default {default}; "
        help_text = f"{field.description or ''} ({shown}env {env_prefix}{name.upper()})"
        opt = (names or {}).get(name, flag(name))
        if ann is bool:
            p.add_argument(opt, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(typing.get_args(ann)[0] if typing.get_args(ann) else ann) is list or \
                typing.get_origin(ann) is list:
            p.add_argument(opt, dest=name, action="append", default=None, help=help_text,
                           metavar=name.upper().removesuffix("S"))
        else:
            choices = typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else None
            p.add_argument(opt, dest=name, default=None, choices=choices, help=help_text,
                           metavar=None if choices else _metavar(name, ann))


def _metavar(name: str, ann) -> str:
    types = set(typing.get_args(ann)) or {ann}
    if Path in types:
        return "FILE"
    if int in types:
        return "PORT" if name.endswith("port") else "N"
    if float in types:
        return "SECONDS"
    return name.rsplit("_", 1)[-1].upper()


def given_flags(args: argparse.Namespace, model: type[BaseSettings]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in model.model_fields if getattr(args, n, None) is not None}


class SettingsError(ValueError):
    """A bad value, with where it came from."""


def load(model: type[BaseSettings], flags: dict[str, Any], env_prefix: str,
         names: Mapping[str, str] | None = None):
    """Build `model` from flags (highest), the environment and the file named by `config_file`
    (flag, then env). Raises SettingsError whose message names the source of each bad value: the
    flag, the environment variable or the file's key."""
    environ = os.environ
    path = (flags.get("config_file") or environ.get(env_prefix + "CONFIG_FILE")) \
        if "config_file" in model.model_fields else None
    cls = model
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"{_source('config_file', flags, environ, env_prefix, None, names)}: "
                                f"cannot read {path}: {exc}") from None
        if data is not None and not isinstance(data, dict):
            raise SettingsError(f"{path}: must hold a mapping of setting names to values")
        cls = type(model.__name__, (model,), {
            "model_config": {**model.model_config, "yaml_file": str(path)}, "__module__": model.__module__})
    try:
        return cls(**flags)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e, flags, environ, env_prefix, path, names)
                                      for e in exc.errors())) from None


def _source(name: str, flags, environ, env_prefix: str, path, names) -> str:
    if name in flags:
        return (names or {}).get(name, flag(name))
    env = env_prefix + name.upper()
    if any(k.upper() == env for k in environ):
        return env
    if path:
        return f"{name} in {path}"
    return flag(name)


def _describe(err: dict, flags, environ, env_prefix: str, path, names) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:  # a rule across fields: the message names the flags
        return msg
    name = str(err["loc"][0])
    where = _source(name, flags, environ, env_prefix, path, names)
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown setting {name!r}"
    got = err.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float) and not isinstance(got, bool) else ""
    return f"{where}: {msg}{shown}"
