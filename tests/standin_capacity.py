"""The stand-in operator (timer mode) as a real process with a GPU capacity the test changes at
run time: the ConfigMap `gpu-capacity`'s data.gpus (import as `from standin_capacity import
CappedStandin`)."""

from __future__ import annotations

import json
from pathlib import Path

from devcluster import launch

CONFIGMAP = "gpu-capacity"


class CappedStandin:
    def __init__(self, cluster, kubectl, namespace: str, gpus: int, startup_delay_s: float = 1.0) -> None:
        self.kubectl, self.namespace = kubectl, namespace
        kubectl("-n", namespace, "create", "configmap", CONFIGMAP, f"--from-literal=gpus={gpus}")
        self.proc = launch.standin(cluster.kubeconfig, namespace,
                                   Path(cluster.state_dir) / "logs" / f"standin-capacity-{namespace}.log",
                                   startup_delay_s=startup_delay_s,
                                   extra=("--capacity-configmap", f"{namespace}/{CONFIGMAP}")).start()

    def set_gpus(self, gpus: int) -> None:
        self.kubectl("-n", self.namespace, "patch", "configmap", CONFIGMAP, "--type=merge",
                     "-p", json.dumps({"data": {"gpus": str(gpus)}}))

    def stop(self) -> None:
        self.proc.stop(timeout=10)
