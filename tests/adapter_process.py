"""A real `dynamo-scaling adapter` process for tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from helpers import wait_for

from devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[1]


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
