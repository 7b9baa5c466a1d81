"""Processes for the planner's fault tests: exporters serving a deployment's Dynamo series to a
real Prometheus, a deliberately broken Prometheus upstream, and the planner process itself.
Import as `from planner_support import ...` from tests in this directory."""

from __future__ import annotations

import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml
from exporter_process import Exporter

from adapter.sync import replicas_writers
from devcluster import launch, procs

REPO = Path(__file__).resolve().parents[2]
TOKEN = "planner-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# the disaggregated DGD the planner tests plan (read-only: tests apply it, never change it)
DGD = {
    "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
    "spec": {"services": {
        "Frontend": {"componentType": "frontend", "replicas": 1},
        "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 3,
                    "scalingAdapter": {"enabled": True}},
        "decode": {"componentType": "worker", "subComponentType": "decode", "replicas": 2,
                   "scalingAdapter": {"enabled": True}},
    }},
}


def frontend_series() -> list[dict]:
    """An idle frontend: its request counter is present and flat."""
    return [{"name": "dynamo_frontend_requests", "type": "counter", "value": 7, "labels": {"model": "m"}},
            {"name": "dynamo_frontend_inflight_requests", "value": 0, "labels": {"model": "m"}}]


def worker_series(*services: str) -> list[dict]:
    """Idle workers of the given pools: running and waiting requests present and zero."""
    return [{"name": name, "value": 0, "labels": {"service": svc, "model_name": "m"}}
            for svc in services for name in ("vllm:num_requests_running", "vllm:num_requests_waiting")]


class IdleDeployment:
    """A frontend and the worker pools of DGD `dgd` in `namespace`, scraped by `prometheus`."""

    def __init__(self, prometheus, workdir: Path, namespace: str, dgd: str = "llama") -> None:
        self.prom, self.ident = prometheus, {"namespace": namespace, "dgd": dgd}
        self.frontend = Exporter(workdir / "frontend", frontend_series())
        self.workers = Exporter(workdir / "workers", worker_series("prefill", "decode"))
        self.frontend_up(True)
        prometheus.set_targets("workers", [(self.workers.address, self.ident)])
        prometheus.wait_for_targets("frontend", 1)
        prometheus.wait_for_targets("workers", 1)

    def frontend_up(self, up: bool) -> None:
        """Publish or withdraw the frontend's scrape target (file_sd), as a target that goes away."""
        self.prom.set_targets("frontend", [(self.frontend.address, {**self.ident, "service": "Frontend"})]
                              if up else [])

    def stop(self) -> None:
        self.frontend.stop()
        self.workers.stop()


class BrokenPrometheus:
    """A Prometheus upstream on 127.0.0.1 that forwards /api/v1/query to a real Prometheus, or
    answers it with malformed or partial bodies (cycled, one per request) while `broken`."""

    BODIES = [
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',  # no value
        b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1]}]}}',  # half a value
        b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}',
        b'{"status":"success","data":null}',
        b'["status","success"]',
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"val',  # cut off
        b'{"status":"success","data":{"resultType":"scalar","result":[]}}',
    ]

    def __init__(self, upstream: str) -> None:
        self.upstream, self.broken, self.served = upstream.rstrip("/"), False, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, body: bytes) -> None:
                if owner.broken:
                    status, data = 200, owner.BODIES[owner.served % len(owner.BODIES)]
                    owner.served += 1
                else:
                    req = urllib.request.Request(owner.upstream + self.path, data=body or None,
                                                 headers={"Content-Type": self.headers.get("Content-Type", "")})
                    try:
                        with urllib.request.urlopen(req, timeout=5) as r:
                            status, data = r.status, r.read()
                    except urllib.error.HTTPError as exc:
                        status, data = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_planner(kubeconfig, namespace: str, workdir: Path, prom_url: str, *extra: str,
                  planner: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`dynamo-scaling planner` for DGD llama (pools prefill and decode) planning every second,
    its API on plain HTTP on 127.0.0.1 (these tests are about planning, not transport)."""
    cfg = {"deployment": {"name": "llama", "namespace": namespace, "prefill_service": "prefill",
                          "decode_service": "decode"},
           "planner": {"interval_s": 1, "scale_down_hold_s": 0, "scale_down_step": 0.5, "startup_s": 1,
                       "peak_window_s": 0, **(planner or {})},
           "signals": {"preset": "dgd-labels"},  # the exporters' series carry dgd/service labels
           "profile_file": "bundled"}  # sized with the mocker's profile; without one the planner fits online
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "planner.yaml").write_text(yaml.safe_dump(cfg))
    (workdir / "token").write_text(TOKEN)
    planner = launch.planner(kubeconfig, workdir / "planner.yaml", prom_url, workdir / "planner.log",
                             static_token_file=workdir / "token", insecure_http=True, extra=extra).start(timeout_s=30)
    return planner.proc, f"http://127.0.0.1:{planner.ports['api']}"


def stop(proc: subprocess.Popen) -> None:
    procs.stop(proc, 10)


def decisions(url: str) -> list[dict]:
    """Decision history, oldest first."""
    return httpx.get(url + "/v1/decisions", params={"limit": 1000}, headers=AUTH, timeout=5).json()["items"][::-1]


def metric(url: str, line_prefix: str) -> float:
    """Sum of the samples on /metrics whose line starts with `line_prefix`."""
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(line_prefix))


def spec(kubectl, ns: str, svc: str) -> int:
    """The adapter llama-<svc>'s spec.replicas."""
    return kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}")["spec"]["replicas"]


def writers(kubectl, ns: str, svc: str) -> list[str]:
    """Field managers that wrote the adapter llama-<svc>'s spec.replicas."""
    return replicas_writers(kubectl.json("-n", ns, "get", "dgdsa", f"llama-{svc}", "--show-managed-fields")
                            ["metadata"]["managedFields"])


def dgd_ready(kubectl, ns: str) -> bool:
    conds = kubectl.json("-n", ns, "get", "dgd", "llama").get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
