"""A real `dynamo-scaling planner` process (started by devcluster.launch.planner), and idle
Dynamo series for it to plan on, for tests (import as `from planner_process import ...`)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import wait_for

from devcluster import launch, procs
from devcluster.certs import issue, make_ca
from devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[2]


class PlannerProcess:
    """`dynamo-scaling planner --config ...` on a free port; `token_file` None means the production
    path (Kubernetes TokenReview + SubjectAccessReview), never a static token from the environment.
    `tls`: "files" serves HTTPS with a certificate from a CA of the test's own (`verify` for
    clients), as in production; "self-signed" gives no certificate (the planner makes one, not
    verified); "off" is plain HTTP through --insecure-http."""

    def __init__(self, kubeconfig: Path, namespace: str, prometheus_url: str, workdir: Path,
                 planner: dict | None = None, token_file: Path | None = None, name: str = "llama",
                 tls: str = "files", extra: tuple[str, ...] = (), config: dict | None = None) -> None:
        self.workdir, self.token_file, self.extra = workdir, token_file, extra
        self.cfg = {"deployment": {"name": name, "namespace": namespace, "prefill_service": "prefill",
                                   "decode_service": "decode"},
                    "planner": {"interval_s": 1, "scale_down_hold_s": 0, "scale_down_step": 0.5, "startup_s": 1,
                                "peak_window_s": 0, **(planner or {})},
                    "signals": {"preset": "dgd-labels"},  # the exporters' series carry dgd/service labels
                    # these tests size with the mocker's profile; without one the planner fits online
                    "profile_file": "bundled"}
        if config is not None:  # top-level keys replaced, e.g. {"fleet": {...}} for the one deployment
            self.cfg = {**{k: v for k, v in self.cfg.items() if k != "deployment"}, **config}
        self.kubeconfig, self.prometheus_url = kubeconfig, prometheus_url
        self.args = ["--kubeconfig", str(kubeconfig), "--prometheus-url", prometheus_url]
        self.port = free_port()
        self.ca = self.serving = None
        self.verify: ssl.SSLContext | bool = True
        if tls == "files":
            pki = workdir / "pki"
            pki.mkdir(parents=True, exist_ok=True)
            ca = make_ca(pki, "ca", "planner-test-ca")
            self.serving = issue(ca, pki, "planner", "planner", dns=("localhost",), ips=("127.0.0.1",), server=True)
            self.args += ["--tls-cert-file", str(self.serving.cert), "--tls-private-key-file", str(self.serving.key)]
            self.ca, self.url = ca, f"https://127.0.0.1:{self.port}"
            self.verify = ssl.create_default_context(cafile=str(ca.cert))
        elif tls == "self-signed":
            self.verify, self.url = False, f"https://127.0.0.1:{self.port}"
        else:
            self.args += ["--insecure-http"]
            self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.launched: launch.Process | None = None

    def start(self, timeout: float = 30) -> PlannerProcess:
        (self.workdir / "planner.yaml").write_text(yaml.safe_dump(self.cfg))
        self.launched = launch.planner(
            self.kubeconfig, self.workdir / "planner.yaml", self.prometheus_url, self.workdir / "planner.log",
            port=self.port, insecure_http=self.url.startswith("http:"),
            tls_cert_file=self.serving and self.serving.cert, tls_key_file=self.serving and self.serving.key,
            ca_file=self.ca and self.ca.cert, static_token_file=self.token_file, extra=self.extra)
        try:
            self.launched.start(timeout_s=timeout)
        except launch.LaunchError as exc:  # a test failure, like any other wait that runs out
            pytest.fail(str(exc))
        finally:
            self.proc = self.launched.proc
        return self

    def _up(self) -> bool:
        assert self.proc and self.proc.poll() is None, (self.workdir / "planner.log").read_text()[-2000:]
        try:
            return httpx.get(self.url + "/healthz", timeout=1, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def decisions(self, headers: dict) -> list[dict]:
        """Decision history, newest first."""
        r = httpx.get(self.url + "/v1/decisions", params={"limit": 1000}, headers=headers, timeout=5,
                      verify=self.verify)
        r.raise_for_status()
        return r.json()["items"]

    def stop(self) -> None:
        if self.launched is not None and self.launched.proc is self.proc:
            self.launched.stop(timeout=10)
        elif self.proc and self.proc.poll() is None:  # started some other way, by a subclass
            procs.stop(self.proc, 10)


class IdleSeries:
    """An idle frontend and idle prefill/decode workers of DGD `dgd`, as series served by
    tests/metrics/exporter.py and scraped by a real Prometheus: the request counter is present and
    flat, running and waiting requests are zero. The planner reads that as idle; a missing series
    it does not."""

    def __init__(self, prometheus, workdir: Path, namespace: str, dgd: str = "llama") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        ident = {"namespace": namespace, "dgd": dgd}
        frontend = [{"name": "dynamo_frontend_requests", "type": "counter", "value": 7, "labels": {"model": "m"}},
                    {"name": "dynamo_frontend_inflight_requests", "value": 0, "labels": {"model": "m"}}]
        workers = [{"name": name, "value": 0, "labels": {"service": svc, "model_name": "m"}}
                   for svc in ("prefill", "decode")
                   for name in ("vllm:num_requests_running", "vllm:num_requests_waiting")]
        self.procs: list[subprocess.Popen] = []
        jobs = (("frontend", frontend, {**ident, "service": "Frontend"}), ("workers", workers, ident))
        for job, series, labels in jobs:
            port = free_port()
            state = workdir / f"{job}.json"
            state.write_text(json.dumps({"series": series}))
            self.procs.append(subprocess.Popen([sys.executable, str(REPO / "tests" / "metrics" / "exporter.py"),
                                                str(port), str(state)], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.STDOUT))
            wait_for(lambda: self._serves(port), timeout=15, what=f"{job} exporter")
            prometheus.set_targets(job, [(f"127.0.0.1:{port}", labels)])
            prometheus.wait_for_targets(job, 1)
        # a rate needs two scrapes of the counter
        wait_for(lambda: prometheus.query(f'rate(dynamo_frontend_requests_total{{namespace="{namespace}"}}[5s])'),
                 timeout=15, what="the frontend's request rate in Prometheus")

    @staticmethod
    def _serves(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for proc in self.procs:
            procs.stop(proc, 5)
