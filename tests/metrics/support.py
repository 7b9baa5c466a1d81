"""Processes for the metrics tests: exporters with Dynamo-named series and the metrics server
itself (`dynamo-scaling metrics-server`, a real process on real ports)."""

from __future__ import annotations

import ssl
from pathlib import Path

from exporter_process import Exporter  # noqa: F401  (tests import it from here)

from devcluster import launch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class MetricsServerProcess:
    """`dynamo-scaling metrics-server` with the given flags (started by devcluster.launch.metrics_server);
    waits until it answers."""

    def __init__(self, workdir: Path, prometheus_url: str, *flags: str, secure: bool = True,
                 http: bool = True, grpc: bool = True, env: dict[str, str] | None = None,
                 ready_ssl: ssl.SSLContext | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        # one log per server, named by its port, so servers sharing a workdir keep theirs apart
        self.launched = launch.metrics_server(prometheus_url, workdir / "metrics-server.log", secure=secure,
                                              http=http, grpc=grpc, ready_context=ready_ssl, extra=flags,
                                              env=env, log_level="DEBUG")
        ports = self.launched.ports
        self.secure_port, self.http_port, self.grpc_port = ports["secure"], ports["http"], ports["grpc"]
        self.log_path = self.launched.log_path = workdir / f"metrics-server-{self.secure_port or self.http_port}.log"
        try:
            self.launched.start(timeout_s=30)
        finally:
            self.proc = self.launched.proc

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.secure_port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.launched.log_tail(chars)

    def stop(self) -> int:
        return self.launched.stop(timeout=10)


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
