"""Prometheus instant-query clients (sync for the planner, async for the collector), how to
reach a Prometheus behind authentication (`PrometheusConnection`), and a reader that evaluates a
signal of a `SignalMapping` into labelled values. No side effects."""

from __future__ import annotations

import math
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


_FIELDS = ("bearer_token_file", "username", "password_file", "ca_file", "cert_file", "key_file", "headers")


class PrometheusConnection(BaseModel):
    """Credentials and TLS settings for a Prometheus behind authentication (a proxy such as
    kube-rbac-proxy or oauth2-proxy, or Prometheus' own `--web.config.file`). Files are read
    when the client is built, except the bearer token, which is read on every request so a
    rotated token (a projected service-account token) is picked up."""

    model_config = ConfigDict(extra="forbid")

    bearer_token_file: Path | None = Field(None, description="file holding a bearer token sent on every query")
    username: str | None = Field(None, description="basic-auth user name")
    password_file: Path | None = Field(None, description="file holding the basic-auth password")
    ca_file: Path | None = Field(None, description="CA bundle (PEM) that Prometheus' serving certificate chains to")
    cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, description="key of the client certificate")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers, e.g. X-Scope-OrgID")
    # how the settings are spelt to the user in errors: flags of the metrics server, or the
    # planner's config keys
    style: Literal["flag", "config"] = Field("flag", exclude=True)

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v):
        if isinstance(v, str):  # "Name: value, Other: value" from a flag or the environment
            out = {}
            for part in (p.strip() for p in v.split(",") if p.strip()):
                name, sep, value = part.partition(":")
                if not sep or not name.strip():
                    raise ValueError(f"header {part!r}: expected 'Name: value'")
                out[name.strip()] = value.strip()
            return out
        return v

    @model_validator(mode="after")
    def _check(self) -> "PrometheusConnection":
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError(f"{self.setting('cert_file')} and {self.setting('key_file')} go together")
        if bool(self.username) != bool(self.password_file):
            raise ValueError(f"{self.setting('username')} and {self.setting('password_file')} go together")
        if self.username and self.bearer_token_file:
            raise ValueError(f"give {self.setting('bearer_token_file')} or {self.setting('username')}, not both")
        return self

    def setting(self, name: str) -> str:
        return f"--prometheus-{name.replace('_', '-')}" if self.style == "flag" else f"prometheus.{name}"

    @classmethod
    def env_overrides(cls, data: dict | None, prefix: str) -> dict:
        """`data` (a config block) with `<prefix><FIELD>` environment variables on top."""
        out = dict(data or {})
        for name in _FIELDS:
            value = os.environ.get(prefix + name.upper())
            if value:
                out[name] = value
        out.setdefault("style", "config")
        return out

    def _read(self, name: str) -> str:
        path = getattr(self, name)
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise PrometheusError(f"{self.setting(name)} {path}: {exc.strerror}") from None

    def client_options(self) -> dict:
        """Keyword arguments for httpx.Client / AsyncClient: `verify` (an SSL context with the
        CA bundle and client certificate), `auth` and `headers`."""
        opts: dict = {"headers": dict(self.headers)}
        if self.ca_file or self.cert_file:
            try:
                ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            except (OSError, ssl.SSLError) as exc:
                raise PrometheusError(f"{self.setting('ca_file')} {self.ca_file}: "
                                      f"{getattr(exc, 'strerror', None) or exc}") from None
            if self.cert_file:
                try:
                    ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
                except (OSError, ssl.SSLError) as exc:
                    raise PrometheusError(f"{self.setting('cert_file')} {self.cert_file} / {self.setting('key_file')} "
                                          f"{self.key_file}: {getattr(exc, 'strerror', None) or exc}") from None
            opts["verify"] = ctx
        if self.username:
            opts["auth"] = httpx.BasicAuth(self.username, self._read("password_file"))
        elif self.bearer_token_file:
            self._read("bearer_token_file")  # fail at start, not on the first query
            opts["auth"] = _TokenFileAuth(self)
        return opts

    def explain(self, url: str, status: int | None = None, error: Exception | None = None) -> str | None:
        """What to check when Prometheus refused us or TLS failed, naming the settings."""
        if status in (401, 403):
            if self.username:
                given = f"the basic-auth credentials of {self.setting('username')} / {self.setting('password_file')}"
            elif self.bearer_token_file:
                given = f"the token in {self.setting('bearer_token_file')}"
            else:
                given = (f"no credentials: set {self.setting('bearer_token_file')}, or {self.setting('username')} "
                         f"and {self.setting('password_file')}, or {self.setting('cert_file')}")
            return f"Prometheus at {url} answered {status} ({'unauthorized' if status == 401 else 'forbidden'}): {given}"
        text = str(error or "")
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return (f"Prometheus at {url}: its serving certificate is not trusted ({text[:160]}); set "
                    f"{self.setting('ca_file')} to the CA bundle that signed it")
        if "CERTIFICATE_REQUIRED" in text or "certificate required" in text or "BAD_CERTIFICATE" in text:
            return (f"Prometheus at {url} wants a client certificate it accepts ({text[:160]}): set "
                    f"{self.setting('cert_file')} and {self.setting('key_file')}")
        if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
            return f"Prometheus at {url} does not speak TLS, or speaks only TLS ({text[:160]}): check the URL scheme"
        return None


class _TokenFileAuth(httpx.Auth):
    """Bearer token from a file, re-read on every request (rotation)."""

    def __init__(self, conn: PrometheusConnection) -> None:
        self.conn = conn

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self.conn._read('bearer_token_file')}"
        yield request


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


def _options(connection: PrometheusConnection | None, headers: dict[str, str] | None) -> dict:
    opts = (connection or PrometheusConnection()).client_options()
    opts["headers"] = {**opts["headers"], **(headers or {})}
    return opts


def _refused(url: str, connection: PrometheusConnection, response: httpx.Response) -> None:
    why = connection.explain(url, status=response.status_code)
    if why:
        raise PrometheusError(why)


def _unreachable(url: str, connection: PrometheusConnection, exc: httpx.HTTPError) -> PrometheusError:
    return PrometheusError(connection.explain(url, error=exc) or f"Prometheus at {url} unreachable: {exc!r}")


class PrometheusClient:
    """Blocking client: `query(promql)` -> samples (NaN/Inf dropped unless `finite=False`).
    Raises PrometheusError, naming the setting to fix when credentials or TLS are refused."""

    def __init__(self, url: str, timeout_s: float = 5.0, headers: dict[str, str] | None = None,
                 connection: PrometheusConnection | None = None) -> None:
        self.url = url.rstrip("/")
        self.connection = connection or PrometheusConnection()
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, **_options(connection, headers))

    def query(self, promql: str, at: float | None = None, finite: bool = True) -> list[Sample]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            r = self._http.post("/api/v1/query", data=params)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, self.connection, exc) from exc
        _refused(self.url, self.connection, r)
        samples = _parse(r)
        return _finite(samples) if finite else samples

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "PrometheusClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncPrometheusClient:
    def __init__(self, url: str, timeout_s: float = 5.0, headers: dict[str, str] | None = None,
                 connection: PrometheusConnection | None = None) -> None:
        self.url = url.rstrip("/")
        self.connection = connection or PrometheusConnection()
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, **_options(connection, headers))

    async def query(self, promql: str, at: float | None = None, finite: bool = True) -> list[Sample]:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            r = await self._http.post("/api/v1/query", data=params)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, self.connection, exc) from exc
        _refused(self.url, self.connection, r)
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
