"""The stand-in operator in dynamo mode as a real process: every pod is a real Dynamo frontend
or mocker worker, published to Prometheus through a file_sd targets file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class DynamoStandin:
    def __init__(self, cluster, namespace: str, workdir: Path, targets_file: Path,
                 startup_delay_s: float = 2.0) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.workdir, self.targets_file = workdir, targets_file
        self.startup_delay_s = startup_delay_s
        self.log_path = workdir / "standin.log"
        self.proc: subprocess.Popen | None = None

    @property
    def discovery_dir(self) -> Path:
        return self.workdir / "discovery"

    def start(self) -> "DynamoStandin":
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devcluster.standin", "--kubeconfig", str(self.cluster.kubeconfig),
                 "--namespace", self.namespace, "--mode", "dynamo", "--workdir", str(self.workdir),
                 "--targets-file", str(self.targets_file), "--startup-delay", str(self.startup_delay_s)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
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
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
