"""A real `dynamo-scaling adapter` process for tests (started by devcluster.launch.adapter)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from devcluster import launch


class AdapterProcess:
    def __init__(self, cluster, namespace: str, kubeconfig: Path, logdir: Path, resync_period: float = 2.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.cluster, self.namespace, self.kubeconfig, self.logdir = cluster, namespace, kubeconfig, logdir
        self.extra_args = extra_args
        self.resync_period = resync_period
        self.launched = launch.adapter(kubeconfig, namespace, logdir / "adapter.log", resync_period_s=resync_period,
                                       extra=extra_args)
        self.health, self.metrics = self.launched.ports["health"], self.launched.ports["metrics"]

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.launched.proc

    def start(self) -> AdapterProcess:
        try:
            self.launched.start(timeout_s=30)
        except launch.LaunchError as exc:  # a test failure, like any other wait that runs out
            pytest.fail(str(exc))
        return self

    def ready(self) -> bool:
        return self.launched.ready()

    def kill(self) -> None:
        self.launched.kill()

    def stop(self) -> None:
        self.launched.stop()


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
