"""Build etcd, kube-apiserver, kube-controller-manager and kubectl from the Go module in
`controlplane/`, once per version, into a cache outside the work tree.

The cache key covers everything that changes the binaries (go.mod, go.sum, the tiny mains and
the Go toolchain version), so a second run reuses them and a version bump rebuilds. Go's own
build cache makes a rebuild after a small change incremental.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODULE_DIR = Path(__file__).resolve().parent / "controlplane"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


def cache_root() -> Path:
    env = os.environ.get("DYNAMO_SCALING_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dynamo-scaling"


def required_version(module_dir: Path, module: str) -> str:
    """The version of `module` that `module_dir/go.mod` requires."""
    text = (module_dir / "go.mod").read_text()
    m = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", text, re.M)
    if not m:
        raise RuntimeError(f"{module_dir / 'go.mod'}: no {module} requirement")
    return m.group(1)


def kubernetes_version(module_dir: Path = MODULE_DIR) -> str:
    return required_version(module_dir, "k8s.io/kubernetes")


def _go_version() -> str:
    try:
        out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True)
    except FileNotFoundError as exc:
        raise RuntimeError("the Go toolchain is needed to build the control plane: `go` is not on PATH") from exc
    return out.stdout.strip()


def cache_key(module_dir: Path = MODULE_DIR) -> str:
    h = hashlib.sha256()
    for path in sorted([module_dir / "go.mod", module_dir / "go.sum", *module_dir.glob("cmd/*/*.go")]):
        h.update(path.relative_to(module_dir).as_posix().encode())
        h.update(path.read_bytes())
    h.update(_go_version().encode())
    return f"{kubernetes_version(module_dir)}-{h.hexdigest()[:12]}"


@dataclass(frozen=True)
class Binaries:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def complete(self) -> bool:
        return all(os.access(self.path(b), os.X_OK) for b in BINARIES)


# measured cold builds on 2 cores (the first one includes fetching the modules)
_ROUGH_BUILD_S = {"etcd": 40, "kube-apiserver": 180, "kube-controller-manager": 70, "kubectl": 20}


def _ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def binaries_dir(module_dir: Path = MODULE_DIR) -> Path:
    return cache_root() / "controlplane" / cache_key(module_dir) / "bin"


def ensure_binaries(module_dir: Path = MODULE_DIR, *, only: tuple[str, ...] = BINARIES) -> Binaries:
    """Return the cached binaries, building whichever are missing, one at a time."""
    out = binaries_dir(module_dir)
    out.mkdir(parents=True, exist_ok=True)
    version = kubernetes_version(module_dir)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    missing = [b for b in only if not os.access(out / b, os.X_OK)]
    if missing:
        minutes = sum(_ROUGH_BUILD_S.get(b, 60) for b in missing) / 60
        log.info("building %s from the Go modules of Kubernetes %s: about %.0f minutes on 2 cores, "
                 "once (cached in %s)", ", ".join(missing), version, max(1.0, minutes), out)
    for i, name in enumerate(missing, 1):
        log.info("building %s (%d/%d) for Kubernetes %s", name, i, len(missing), version,
                 extra={"binary": name, "dir": str(out)})
        started = time.monotonic()
        tmp = out / f".{name}.{os.getpid()}.tmp"  # two first runs at once must not share it
        cmd = ["go", "build", "-trimpath", "-ldflags", _ldflags(version), "-o", str(tmp), f"./cmd/{name}"]
        proc = subprocess.run(cmd, cwd=module_dir, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"building {name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        tmp.replace(out / name)
        log.info("built %s in %.0f s", name, time.monotonic() - started, extra={"binary": name})
    return Binaries(out)


def clean_old_builds(keep: Path) -> list[Path]:
    """Remove cached builds of other keys (disk is precious on small machines)."""
    root = cache_root() / "controlplane"
    removed = []
    for d in root.iterdir() if root.exists() else []:
        if d != keep.parent and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@dataclass(frozen=True)
class GoTool:
    """A tool built from a small Go module in the repository (devcluster/tools/<name>) that pins
    the tool's own module: cached by version, go.mod/go.sum, Go version and link flags."""

    name: str
    module_dir: Path
    module: str  # the module whose required version names the build
    package: str
    ldflags: str = "-s -w"
    rough_minutes: int = 2

    @property
    def version(self) -> str:
        return required_version(self.module_dir, self.module)

    def cache_key(self) -> str:
        h = hashlib.sha256()
        for name in ("go.mod", "go.sum"):
            h.update(name.encode())
            h.update((self.module_dir / name).read_bytes())
        h.update(_go_version().encode())
        h.update(self.ldflags.encode())
        return f"{self.version}-{h.hexdigest()[:12]}"

    def path(self) -> Path:
        return cache_root() / self.name / self.cache_key() / self.name

    def ensure(self) -> Path:
        """The cached binary, built first if it is missing."""
        out = self.path()
        if os.access(out, os.X_OK):
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
        tmp = out.parent / f".{self.name}.{os.getpid()}.tmp"  # two first runs at once must not share it
        log.info("building %s %s from its Go module (about %d minutes on 2 cores the first time, cached after)",
                 self.name, self.version, self.rough_minutes, extra={"dir": str(out.parent)})
        started = time.monotonic()
        proc = subprocess.run(["go", "build", "-trimpath", "-ldflags", self.ldflags, "-o", str(tmp), self.package],
                              cwd=self.module_dir, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"building {self.name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        tmp.replace(out)
        log.info("built %s in %.0f s", self.name, time.monotonic() - started)
        return out


KEDA_MODULE_DIR = Path(__file__).resolve().parent / "tools" / "keda"


def keda_tools(module_dir: Path = KEDA_MODULE_DIR) -> dict[str, GoTool]:
    """KEDA's operator and metrics API server, both from the module pinned in tools/keda (every
    scaler's SDK makes the first build long; the two share Go's build cache). Measured cold on 2
    busy cores: operator 1091 s, metrics API server 204 s; 41 s and 37 s with Go's build cache warm."""
    version = required_version(module_dir, "github.com/kedacore/keda/v2")
    ldflags = f"-s -w -X github.com/kedacore/keda/v2/version.Version={version}"
    return {name: GoTool(name, module_dir, "github.com/kedacore/keda/v2", f"github.com/kedacore/keda/v2/cmd/{cmd}",
                         ldflags, rough_minutes=minutes)
            for name, cmd, minutes in (("keda-operator", "operator", 18), ("keda-adapter", "adapter", 4))}
