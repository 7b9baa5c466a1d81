"""Build the `helm` CLI from its Go module (`tools/helm/`) once per version into the same cache
the control plane uses, and run it against a local cluster.

The module declares helm's command as a Go `tool`, so `go build helm.sh/helm/v3/cmd/helm` inside
it builds exactly the version pinned in its go.mod/go.sum. The cache key covers go.mod, go.sum
and the Go toolchain version.

    python -m devcluster.helm          # build (or find) helm and print its path
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from devcluster.build import GoTool, required_version

log = logging.getLogger(__name__)

MODULE_DIR = Path(__file__).resolve().parent / "tools" / "helm"
PACKAGE = "helm.sh/helm/v3/cmd/helm"


def helm_version(module_dir: Path = MODULE_DIR) -> str:
    return required_version(module_dir, "helm.sh/helm/v3")


def _ldflags(module_dir: Path = MODULE_DIR) -> str:
    """Version stamps as helm's own Makefile sets them: without the Kubernetes version, `helm
    template` and `helm lint` assume Kubernetes 1.20."""
    minor = required_version(module_dir, "k8s.io/client-go").split(".")[1]  # v0.<minor>.<patch>
    flags = ["-s", "-w",
             f"-X helm.sh/helm/v3/internal/version.version={helm_version(module_dir)}",
             "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def tool(module_dir: Path = MODULE_DIR) -> GoTool:
    return GoTool("helm", module_dir, "helm.sh/helm/v3", PACKAGE, _ldflags(module_dir), rough_minutes=2)


def ensure_helm(module_dir: Path = MODULE_DIR) -> Path:
    """Return the cached helm binary, building it first if it is missing."""
    return tool(module_dir).ensure()


class Helm:
    """`helm` bound to one kubeconfig, with its own config/cache/data directories so nothing
    from the user's home leaks into tests."""

    def __init__(self, binary: Path, kubeconfig: Path | None, home: Path):
        self.binary = Path(binary)
        self.kubeconfig = kubeconfig
        self.home = Path(home)
        for sub in ("config", "cache", "data"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.binary), *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed (exit {proc.returncode}):\n"
                               f"{proc.stderr}\n{proc.stdout[-2000:]}")
        return proc

    def __call__(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_helm())
    return 0


if __name__ == "__main__":
    sys.exit(main())
