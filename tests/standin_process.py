"""The stand-in operator in dynamo mode as a real process (started by devcluster.launch.standin):
every pod is a real Dynamo frontend or mocker worker, published to Prometheus through a file_sd
targets file."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from devcluster import launch


class DynamoStandin:
    def __init__(self, cluster, namespace: str, workdir: Path, targets_file: Path,
                 startup_delay_s: float = 2.0, extra: tuple[str, ...] = ()) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.workdir, self.targets_file = workdir, targets_file
        self.startup_delay_s = startup_delay_s
        self.log_path = workdir / "standin.log"
        self.launched = launch.standin(cluster.kubeconfig, namespace, self.log_path, startup_delay_s=startup_delay_s,
                                       mode="dynamo", workdir=workdir, targets_file=targets_file, extra=extra)

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.launched.proc

    @property
    def discovery_dir(self) -> Path:
        return self.workdir / "discovery"

    def start(self) -> DynamoStandin:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.launched.start()
        return self

    def targets(self) -> list[dict]:
        """The published scrape targets: [{"address": ..., **labels}]."""
        try:
            groups = json.loads(self.targets_file.read_text())
        except (OSError, ValueError):
            return []
        return [{"address": g["targets"][0], **g["labels"]} for g in groups]

    def address_of(self, service: str) -> str | None:
        found = [t["address"] for t in self.targets() if t["service"] == service]
        return found[0] if found else None

    def log_text(self) -> str:
        return self.launched.log_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        self.launched.stop(sig, timeout)
