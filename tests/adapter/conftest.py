"""Run the adapter controller as a real process under a ServiceAccount with exactly the rules
of adapter/rbac.yaml, watching the test's namespace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import wait_for

from devcluster.controlplane import write_kubeconfig
from devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[2]


class AdapterProcess:
    def __init__(self, cluster, namespace: str, kubeconfig: Path, logdir: Path) -> None:
        self.cluster, self.namespace, self.kubeconfig, self.logdir = cluster, namespace, kubeconfig, logdir
        self.proc: subprocess.Popen | None = None
        self.health = free_port()
        self.metrics = free_port()

    def start(self) -> "AdapterProcess":
        log = open(self.logdir / "adapter.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynamo_scaling.cli", "adapter", "--namespace", self.namespace,
             "--kubeconfig", str(self.kubeconfig), "--health-port", str(self.health),
             "--metrics-port", str(self.metrics), "--resync-period", "2"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        wait_for(self.ready, timeout=30, what="adapter /readyz")
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.health}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def rbac_for(namespace: str, sa: str) -> list[dict]:
    rules = yaml.safe_load((REPO / "adapter" / "rbac.yaml").read_text())["rules"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{namespace}-{sa}"},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{namespace}-{sa}"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{namespace}-{sa}"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]},
    ]


@pytest.fixture()
def adapter_kubeconfig(cluster, kubectl, namespace, tmp_path) -> Path:
    kubectl.apply(rbac_for(namespace, "adapter"))
    token = kubectl("-n", namespace, "create", "token", "adapter", "--duration=1h").strip()
    return write_kubeconfig(cluster, tmp_path / "adapter.kubeconfig", user="adapter", token=token)


@pytest.fixture()
def adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path) -> Iterator[AdapterProcess]:
    proc = AdapterProcess(cluster, namespace, adapter_kubeconfig, tmp_path).start()
    yield proc
    proc.stop()
    kubectl.run("delete", "clusterrole,clusterrolebinding", f"{namespace}-adapter", check=False)
