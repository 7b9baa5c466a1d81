"""The one place that knows how to run each of our components as a local process: its command
line, environment, log file, readiness check and how it stops. The tests (tests/conftest.py,
tests/adapter_process.py, tests/standin_process.py, tests/planner_api/, tests/metrics/support.py,
tests/keda/), the live stack (devcluster/stack.py) and the benchmarks start the stand-in
operator, the adapter, the planner and the metrics server only through here.

    adapter = launch.adapter(kubeconfig, "ns", logdir / "adapter.log").start()
    httpx.get(f"http://127.0.0.1:{adapter.ports['metrics']}/metrics")
    adapter.stop()
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.procs import die_with_parent, free_port, poll_until

# children run `python -m ...` from the tree this module was loaded from, so they run the same
# code as the process that started them (a worktree, an editable install or a plain checkout)
SOURCE_ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """A component exited during start-up or was not ready in time; the message ends with its log."""


def http_ok(url: str, timeout: float = 1.0, context: ssl.SSLContext | None = None) -> bool:
    """`url` answers 200; `context` verifies an HTTPS server (None: the system's CAs)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _always() -> bool:
    return True


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that trusts `ca_file`; None: one that checks nothing, for a server
    that made its own certificate."""
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


@dataclass
class Process:
    """One component as a child process in its own session that dies with its parent (even when
    the parent is SIGKILLed), output appended to `log_path`. `start` returns once `ready()` holds.
    The child inherits this process's environment except variables whose names start with one of
    `drop_env` (so a developer's shell cannot configure it behind the command line's back), with
    `env` on top."""

    name: str
    args: list[str]
    log_path: Path
    ready: Callable[[], bool] = _always
    env: dict[str, str] | None = None
    drop_env: tuple[str, ...] = ()
    cwd: Path | None = None
    stop_timeout_s: float = 15.0
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 60.0) -> Process:
        if self.alive:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.environment(), cwd=self.cwd,
                                         start_new_session=True, preexec_fn=die_with_parent)
        self.starts += 1

        def up() -> bool:
            if not self.alive:
                raise LaunchError(f"{self.name} exited during start-up (code {self.proc.returncode}): "
                                  f"{self.log_tail()}")
            return self.ready()

        try:
            poll_until(up, timeout_s, f"{self.name} ready", interval=0.2)
        except TimeoutError:
            raise LaunchError(f"{self.name} not ready after {timeout_s:.0f} s: {self.log_tail()}") from None
        log.info("component ready", extra={"component": self.name, "pid": self.proc.pid})
        return self

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not (self.drop_env and k.startswith(self.drop_env))}
        return {**inherited, **(self.env or {})}

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL: what a crash or an evicted pod looks like."""
        if self.alive:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int | None:
        """Send `sig` (SIGTERM: a graceful stop), SIGKILL after `timeout` (default `stop_timeout_s`),
        reap; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(sig)
            try:
                self.proc.wait(self.stop_timeout_s if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_text()[-chars:]


def cli(*args: str, python: str = sys.executable, log_level: str | None = None) -> list[str]:
    """The `dynamo-scaling` command line, run by `python` (so it needs no console script on PATH);
    `log_level` is the global --log-level (None: the default, INFO)."""
    return [python, "-m", "dynamo_scaling.cli", *(["--log-level", log_level] if log_level else []), *args]


def standin(kubeconfig: Path, namespace: str | None, log_path: Path, *, startup_delay_s: float = 2.0,
            mode: str = "timer", workdir: Path | None = None, targets_file: Path | None = None,
            extra: tuple[str, ...] = (), python: str = sys.executable) -> Process:
    """The stand-in Dynamo operator (`python -m devcluster.standin`) watching `namespace` (None: all).
    `mode` "dynamo" backs each pod by a real Dynamo process, with logs and discovery files under
    `workdir` and Prometheus file_sd targets in `targets_file`. `extra`: further arguments, as is.
    No readiness check: it has no endpoint, and pods show what it has done."""
    args = [python, "-m", "devcluster.standin", "--kubeconfig", str(Path(kubeconfig).absolute()),
            *(["--namespace", namespace] if namespace else []), "--startup-delay", str(startup_delay_s)]
    if mode != "timer":
        args += ["--mode", mode]
    if workdir is not None:
        args += ["--workdir", str(Path(workdir).absolute())]
    if targets_file is not None:
        args += ["--targets-file", str(Path(targets_file).absolute())]
    # dynamo mode drains workers on SIGTERM for up to --drain-timeout (25 s) before it exits
    return Process("standin", [*args, *extra], Path(log_path), cwd=SOURCE_ROOT, stop_timeout_s=30.0)


def adapter(kubeconfig: Path, namespace: str, log_path: Path, *, resync_period_s: float = 2.0,
            extra: tuple[str, ...] = (), python: str = sys.executable, log_level: str | None = None) -> Process:
    """The DGDSA controller (`dynamo-scaling adapter`) for `namespace`, health and metrics on free
    ports (`ports["health"]`, `ports["metrics"]`), ready when /readyz answers 200."""
    health, metrics = free_port(), free_port()
    args = cli("adapter", "--namespace", namespace, "--kubeconfig", str(Path(kubeconfig).absolute()),
               "--health-port", str(health), "--metrics-port", str(metrics),
               "--resync-period", str(resync_period_s), *extra, python=python, log_level=log_level)
    return Process("adapter", args, Path(log_path), ready=lambda: http_ok(f"http://127.0.0.1:{health}/readyz"),
                   cwd=SOURCE_ROOT, ports={"health": health, "metrics": metrics})


def planner(kubeconfig: Path, config_path: Path, prometheus_url: str, log_path: Path, *, port: int | None = None,
            tls_cert_file: Path | None = None, tls_key_file: Path | None = None, ca_file: Path | None = None,
            insecure_http: bool = False, static_token_file: Path | None = None, extra: tuple[str, ...] = (),
            env: dict[str, str] | None = None, python: str = sys.executable, log_level: str | None = None) -> Process:
    """`dynamo-scaling planner --config config_path`, its API on `port` (None: a free one;
    `ports["api"]`). HTTPS with the given serving certificate, checked against `ca_file` when
    ready; without one the planner makes its own (not checked); `insecure_http`: plain HTTP.
    Ready when /healthz answers 200. Inherited DYNAMO_PLANNER_* variables are dropped (they are
    settings too); `env` sets some on purpose."""
    port = port or free_port()
    args = cli("planner", "--config", str(Path(config_path).absolute()),
               "--kubeconfig", str(Path(kubeconfig).absolute()), "--prometheus-url", prometheus_url,
               "--api-port", str(port), python=python, log_level=log_level)
    if insecure_http:
        args += ["--insecure-http"]
    elif tls_cert_file is not None or tls_key_file is not None:
        args += ["--tls-cert-file", str(Path(tls_cert_file).absolute()),
                 "--tls-private-key-file", str(Path(tls_key_file).absolute())]
    if static_token_file is not None:
        args += ["--static-token-file", str(Path(static_token_file).absolute())]
    url = f"{'http' if insecure_http else 'https'}://127.0.0.1:{port}/healthz"
    context = None if insecure_http else tls_context(ca_file)
    return Process("planner", [*args, *extra], Path(log_path), ready=lambda: http_ok(url, context=context),
                   env=env, drop_env=("DYNAMO_PLANNER_",), cwd=SOURCE_ROOT, ports={"api": port})


def metrics_server(prometheus_url: str, log_path: Path, *, secure: bool = True, http: bool = True,
                   grpc: bool = True, ready_context: ssl.SSLContext | None = None, extra: tuple[str, ...] = (),
                   env: dict[str, str] | None = None, python: str = sys.executable,
                   log_level: str | None = None) -> Process:
    """`dynamo-scaling metrics-server` reading `prometheus_url`, each port (`ports["secure"]`,
    `ports["http"]`, `ports["grpc"]`) free or 0 (off). Ready when /readyz answers 200 on the
    plain HTTP port, or without it on the TLS port (checked with `ready_context`; None: not
    checked). Inherited DYNAMO_METRICS_* variables are dropped; `env` sets some on purpose."""
    ports = {name: free_port() if on else 0 for name, on in (("secure", secure), ("http", http), ("grpc", grpc))}
    args = cli("metrics-server", f"--prometheus-url={prometheus_url}", f"--secure-port={ports['secure']}",
               f"--http-port={ports['http']}", f"--grpc-port={ports['grpc']}", *extra,
               python=python, log_level=log_level)
    if ports["http"]:
        url, context = f"http://127.0.0.1:{ports['http']}/readyz", None
    else:
        url, context = f"https://127.0.0.1:{ports['secure']}/readyz", ready_context or tls_context(None)
    return Process("metrics-server", args, Path(log_path), ready=lambda: http_ok(url, context=context),
                   env=env, drop_env=("DYNAMO_METRICS_",), cwd=SOURCE_ROOT, ports=ports)
