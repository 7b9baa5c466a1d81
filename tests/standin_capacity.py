"""The stand-in operator (timer mode) as a real process with a GPU capacity the test changes at
run time: the ConfigMap `gpu-capacity`'s data.gpus (import as `from standin_capacity import
CappedStandin`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devcluster import procs

REPO = Path(__file__).resolve().parents[1]
CONFIGMAP = "gpu-capacity"


class CappedStandin:
    def __init__(self, cluster, kubectl, namespace: str, gpus: int, startup_delay_s: float = 1.0) -> None:
        self.kubectl, self.namespace = kubectl, namespace
        kubectl("-n", namespace, "create", "configmap", CONFIGMAP, f"--from-literal=gpus={gpus}")
        self.log = open(Path(cluster.state_dir) / "logs" / f"standin-capacity-{namespace}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devcluster.standin", "--kubeconfig", str(cluster.kubeconfig),
             "--namespace", namespace, "--startup-delay", str(startup_delay_s),
             "--capacity-configmap", f"{namespace}/{CONFIGMAP}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def set_gpus(self, gpus: int) -> None:
        self.kubectl("-n", self.namespace, "patch", "configmap", CONFIGMAP, "--type=merge",
                     "-p", json.dumps({"data": {"gpus": str(gpus)}}))

    def stop(self) -> None:
        procs.stop(self.proc, 10)
        self.log.close()
