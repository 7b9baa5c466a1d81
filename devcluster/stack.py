"""The whole live loop on the local control plane, one process per component.

Prometheus, the stand-in operator in dynamo mode (real Dynamo frontend and mocker workers), the
DGDSA adapter, the external-metrics server behind the API server's aggregation layer, and the
planner. Each component can be killed and restarted on its own, which is how the end-to-end
test and the live demo show that none of them holds state the cluster does not.

    with LiveStack(workdir, cluster, namespace) as stack:
        stack.start_all(planner_config)
        ...
        stack.restart("adapter")
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from devcluster import apiservice, certs, launch
from devcluster.apiservice import APISERVICE
from devcluster.kubectl import Kubectl, KubectlError
from devcluster.launch import LaunchError, Process, http_ok  # noqa: F401  (devcluster.keda and tests import http_ok from here)
from devcluster.procs import free_port
from devcluster.prometheus import Prometheus

SIGNALS_FILE = Path(__file__).resolve().parent / "signals.yaml"

# a component that does not come up is a stack error: one type for the stack's callers to catch
StackError = LaunchError
# one of our processes (devcluster.launch), started in its own session, dies with its parent
Component = Process


class LiveStack:
    def __init__(self, workdir: Path, kubeconfig: Path, kubectl: Kubectl, namespace: str,
                 startup_delay_s: float = 3.0, python: str = sys.executable) -> None:
        self.workdir = Path(workdir)
        self.kubeconfig = Path(kubeconfig)
        self.kubectl = kubectl
        self.namespace = namespace
        self.startup_delay_s = startup_delay_s
        self.python = python
        self.prometheus = Prometheus(self.workdir / "prometheus", scrape_interval_s=1.0)
        self.components: dict[str, Component] = {}
        self.planner_port = 0
        self.planner_token = ""
        self._apiservice = False

    # -- components ------------------------------------------------------------------------
    def _cli(self, *args: str) -> list[str]:
        return launch.cli(*args, python=self.python)

    def _log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """The end of a component's log, for a test that fails to say what the component saw."""
        try:
            return self._log(name).read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"({name} log unreadable: {exc})"

    def _run(self, comp: Component) -> Component:
        self.components[comp.name] = comp
        return comp.start()

    def _add(self, name: str, args: list[str], ready: Callable[[], bool]) -> Component:
        return self._run(Component(name, args, self._log(name), ready))

    @property
    def standin_workdir(self) -> Path:
        return self.workdir / "dynamo"

    @property
    def targets_file(self) -> Path:
        return self.prometheus.sd_dir / "standin.json"

    def frontend_url(self, dgd: str) -> str | None:
        """The HTTP address of a DGD's (first) frontend process, from the published targets."""
        try:
            groups = json.loads(self.targets_file.read_text())
        except (OSError, ValueError):
            return None
        for g in groups:
            labels = g["labels"]
            if labels.get("dgd") == dgd and labels.get("component_type") == "frontend":
                return f"http://{g['targets'][0]}"
        return None

    def start_prometheus(self) -> None:
        self.prometheus.start()

    def start_standin(self, extra: tuple[str, ...] = ()) -> Component:
        """The stand-in in dynamo mode; `extra`: more of its command-line arguments."""
        return self._run(launch.standin(
            self.kubeconfig, self.namespace, self._log("standin"), startup_delay_s=self.startup_delay_s,
            mode="dynamo", workdir=self.standin_workdir, targets_file=self.targets_file, extra=extra,
            python=self.python))

    def start_adapter(self, extra: tuple[str, ...] = ()) -> Component:
        return self._run(launch.adapter(self.kubeconfig, self.namespace, self._log("adapter"), resync_period_s=5,
                                        extra=extra, python=self.python))

    def start_metrics_server(self, signals_file: Path | None = SIGNALS_FILE) -> Component:
        """The metrics server on TLS, registered as the external metrics API (APIService ->
        ExternalName Service `localhost`, caBundle of a CA made here). `signals_file`: its
        signal mapping (default: the stack's DGD service names; None: the built-in default)."""
        self._claim_apiservice()
        tls = self.workdir / "metrics-tls"
        tls.mkdir(parents=True, exist_ok=True)
        ca = certs.make_ca(tls, "serving-ca", "metrics-serving-ca")
        serving = certs.issue(ca, tls, "serving", "metrics", dns=(f"metrics.{self.namespace}.svc", "localhost"),
                              ips=("127.0.0.1",), server=True)
        comp = self._run(launch.metrics_server(
            self.prometheus.url, self._log("metrics-server"), grpc=False, python=self.python, extra=(
                "--interval=2", "--staleness=15", f"--kubeconfig={self.kubeconfig}",
                f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
                *([f"--signals-file={signals_file}"] if signals_file else []))))
        secure = comp.ports["secure"]
        self.kubectl.apply(apiservice.manifests(self.namespace, "metrics", secure, ca.cert,
                                                {"app.kubernetes.io/managed-by": "devcluster-stack"}))
        self._apiservice = True
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conds = self.kubectl.json("get", "apiservice", APISERVICE).get("status", {}).get("conditions", [])
            if any(c["type"] == "Available" and c["status"] == "True" for c in conds):
                return comp
            time.sleep(0.5)
        raise StackError(f"APIService {APISERVICE} not Available after 60 s")

    def start_planner(self, config: dict) -> Component:
        cfg_path = self.workdir / "planner.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        token_path = self.workdir / "planner-token"
        if not self.planner_token:
            self.planner_token = base64.b32encode(os.urandom(20)).decode().lower()
            token_path.write_text(self.planner_token)
            token_path.chmod(0o600)
        self.planner_port = self.planner_port or free_port()
        return self._run(launch.planner(self.kubeconfig, cfg_path, self.prometheus.url, self._log("planner"),
                                        port=self.planner_port, static_token_file=token_path,
                                        insecure_http=True,  # loopback only
                                        python=self.python))

    # -- control ---------------------------------------------------------------------------
    def kill(self, name: str) -> None:
        self.components[name].kill()

    def restart(self, name: str) -> None:
        comp = self.components[name]
        comp.kill()
        comp.start()

    def close(self) -> None:
        for name in ("planner", "metrics-server", "adapter", "standin"):
            if name in self.components:
                self.components[name].stop()
        if self._apiservice:
            # an unavailable APIService slows every discovery call in the cluster: remove it first
            self.kubectl.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
            self.kubectl.run("-n", self.namespace, "delete", "service", "metrics", "--ignore-not-found", check=False)
            self._apiservice = False
        self.prometheus.stop()

    def __enter__(self) -> "LiveStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _claim_apiservice(self) -> None:
        try:
            existing = self.kubectl.json("get", "apiservice", APISERVICE)
        except KubectlError:
            return
        owner = existing.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by")
        if owner != "devcluster-stack":
            raise StackError(f"{APISERVICE} already exists on this cluster and belongs to "
                             f"{existing['spec'].get('service') or 'the API server'}; remove it first")
