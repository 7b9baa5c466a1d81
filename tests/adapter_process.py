"""A real `dynamo-scaling adapter` process for tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers import wait_for

from devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[1]


class AdapterProcess:
    def __init__(self, cluster, namespace: str, kubeconfig: Path, logdir: Path, resync_period: float = 2.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.cluster, self.namespace, self.kubeconfig, self.logdir = cluster, namespace, kubeconfig, logdir
        self.extra_args = extra_args
        self.resync_period = resync_period
        self.proc: subprocess.Popen | None = None
        self.health = free_port()
        self.metrics = free_port()

    def start(self) -> "AdapterProcess":
        log = open(self.logdir / "adapter.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynamo_scaling.cli", "adapter", "--namespace", self.namespace,
             "--kubeconfig", str(self.kubeconfig), "--health-port", str(self.health),
             "--metrics-port", str(self.metrics), "--resync-period", str(self.resync_period), *self.extra_args],
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


def holds_for(predicate, seconds: float, interval: float = 0.2, what: str = "condition") -> None:
    """The negative counterpart of `wait_for`: fail as soon as `predicate()` turns false within
    `seconds` (a margin the caller derives from the configured periods)."""
    deadline = time.monotonic() + seconds
    while True:
        if not predicate():
            pytest.fail(f"{what} stopped holding within {seconds:.1f} s")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
