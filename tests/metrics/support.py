"""Processes for the metrics tests: exporters with Dynamo-named series and the metrics server
itself (`dynamo-scaling metrics-server`, a real process on real ports)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from devcluster import procs
from devcluster.procs import free_port
from exporter_process import Exporter  # noqa: F401  (tests import it from here)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class MetricsServerProcess:
    """`dynamo-scaling metrics-server` with the given flags; waits until it answers."""

    def __init__(self, workdir: Path, prometheus_url: str, *flags: str, secure: bool = True,
                 http: bool = True, grpc: bool = True, env: dict[str, str] | None = None,
                 ready_ssl: ssl.SSLContext | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.secure_port = free_port() if secure else 0
        self.http_port = free_port() if http else 0
        self.grpc_port = free_port() if grpc else 0
        self.log_path = workdir / f"metrics-server-{self.secure_port or self.http_port}.log"
        args = [sys.executable, "-m", "dynamo_scaling.cli", "--log-level", "DEBUG", "metrics-server",
                f"--prometheus-url={prometheus_url}", f"--secure-port={self.secure_port}",
                f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", *flags]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **(env or {})})
        self._wait(ready_ssl)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.secure_port}"

    def _wait(self, ready_ssl: ssl.SSLContext | None, timeout: float = 30.0) -> None:
        url = f"{self.http_url}/readyz" if self.http_port else f"{self.https_url}/readyz"
        ctx = ready_ssl
        if ctx is None and not self.http_port:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"metrics server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"metrics server not ready: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            procs.stop(self.proc, 10)
        self._log.close()
        return self.proc.returncode


def dynamo_identity(namespace: str, dgd: str, component: str) -> list[dict]:
    """The series by which the default signal mapping tells which DGD and service a pod's
    series belong to, as Dynamo exports them (its namespace `<namespace>-<dgd>` with `_` for
    `-`): a worker's `generate` endpoint, or (component `frontend`) the frontend's KV router."""
    dyn = f"{namespace}-{dgd}".replace("-", "_")
    if component == "frontend":
        return [{"name": "dynamo_component_router_requests", "type": "counter", "value": 0,
                 "labels": {"dynamo_namespace": dyn, "dynamo_component": "backend", "router_id": "1"}}]
    return [{"name": "dynamo_component_inflight_requests", "value": 0,
             "labels": {"dynamo_namespace": dyn, "dynamo_component": component, "dynamo_endpoint": "generate",
                        "worker_id": "1"}}]
