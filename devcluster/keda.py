"""Real KEDA on the local control plane: its operator and its metrics API server, built from
KEDA's Go module (`tools/keda/`, see `devcluster.build.keda_tools`) and run as local processes.

- KEDA's CRDs (ScaledObject, ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication and
  the two CloudEventSource kinds, which its operator watches too) are applied from the module
  pinned in tools/keda (`config/crd/bases`, read from Go's module cache, not copied).
- The operator and the metrics API server talk gRPC over mutual TLS. KEDA normally generates
  those certificates in-cluster (`--enable-cert-rotation`); here rotation, webhook and APIService
  patching are off and both read a cert dir made by `devcluster.certs` (`ca.crt`, `tls.crt`,
  `tls.key`, one certificate valid as server and client for both processes).
- KEDA's metrics API server is registered as the `v1beta1.external.metrics.k8s.io` APIService
  (KEDA owns it; our metrics server then runs with its own APIService off) through an
  ExternalName Service `localhost`, as devcluster.stack does for ours.

    with Keda(workdir, cluster.kubeconfig, kubectl).start() as keda:
        kubectl.apply(scaled_object, namespace)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from devcluster import apiservice, certs
from devcluster.apiservice import APISERVICE
from devcluster.build import KEDA_MODULE_DIR, keda_tools, required_version
from devcluster.kubectl import Kubectl, KubectlError
from devcluster.procs import free_port
from devcluster.stack import Component, StackError, http_ok

log = logging.getLogger(__name__)

MODULE = "github.com/kedacore/keda/v2"
NAMESPACE = "keda"
METRICS_SERVICE = "keda-metrics-apiserver"
MANAGED_BY = "devcluster-keda"
CRDS = ("scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh",
        "clustertriggerauthentications.keda.sh")


def ensure_binaries(module_dir: Path = KEDA_MODULE_DIR) -> dict[str, Path]:
    """{"keda-operator": path, "keda-adapter": path}, built first where missing (long the first time)."""
    return {name: tool.ensure() for name, tool in keda_tools(module_dir).items()}


def built(module_dir: Path = KEDA_MODULE_DIR) -> bool:
    """Both binaries are in the cache (starting KEDA then takes seconds, not a build)."""
    return all(os.access(tool.path(), os.X_OK) for tool in keda_tools(module_dir).values())


def module_source(module_dir: Path = KEDA_MODULE_DIR) -> Path:
    """KEDA's module source in Go's module cache, downloaded if missing."""
    version = required_version(module_dir, MODULE)
    out = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{version}"], cwd=module_dir,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"go mod download {MODULE}@{version} failed: {out.stderr[-2000:]}")
    return Path(json.loads(out.stdout)["Dir"])


def crd_files(module_dir: Path = KEDA_MODULE_DIR) -> list[Path]:
    return sorted((module_source(module_dir) / "config" / "crd" / "bases").glob("*.yaml"))


def install_crds(kubectl: Kubectl, module_dir: Path = KEDA_MODULE_DIR) -> None:
    # server-side: the ScaledJob CRD is too large for client-side apply's last-applied annotation
    args = ["apply", "--server-side", "--force-conflicts"]
    for f in crd_files(module_dir):
        args += ["-f", str(f)]
    kubectl(*args)
    # a CRD just created has no status yet, and `kubectl wait` fails on that instead of waiting
    deadline = time.monotonic() + 60
    while True:
        done = kubectl.run("wait", "--for=condition=Established", "--timeout=30s", "crd", *CRDS, check=False)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise StackError(f"KEDA's CRDs not Established: {done.stderr}")
        time.sleep(0.5)


class Keda:
    def __init__(self, workdir: Path, kubeconfig: Path, kubectl: Kubectl, namespace: str = NAMESPACE,
                 module_dir: Path = KEDA_MODULE_DIR, scaler_cas: tuple[Path, ...] = ()) -> None:
        self.workdir = Path(workdir)
        self.kubeconfig = Path(kubeconfig)
        self.kubectl = kubectl
        self.namespace = namespace
        self.module_dir = module_dir
        # CA files KEDA's scalers trust beside the system roots (its --ca-dir, /custom/ca in a
        # cluster): how the metrics-api trigger verifies a server with only a bearer token
        self.scaler_cas = tuple(scaler_cas)
        self.components: dict[str, Component] = {}
        self.grpc_port = self.health_port = self.secure_port = 0
        self._apiservice = False

    # -- certificates ----------------------------------------------------------------------
    def _cert_dir(self) -> Path:
        """ca.crt/tls.crt/tls.key as KEDA's cert rotation would write them: one certificate that
        both processes present (server and client) and trust through the CA."""
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = certs.make_ca(pki, "keda-ca", "dynamo-scaling-devcluster-keda-ca")
        names = [f"{svc}.{self.namespace}.svc{suffix}" for svc in ("keda-operator", METRICS_SERVICE)
                 for suffix in ("", ".cluster.local")]
        leaf = certs.issue(ca, pki, "keda", "keda", dns=("localhost", *names), ips=("127.0.0.1",),
                           server=True, client=True)
        out = self.workdir / "certs"
        out.mkdir(parents=True, exist_ok=True)
        for src, dst in ((ca.cert, "ca.crt"), (leaf.cert, "tls.crt"), (leaf.key, "tls.key")):
            shutil.copyfile(src, out / dst)
        (out / "tls.key").chmod(0o600)
        return out

    # -- processes -------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        return {"WATCH_NAMESPACE": "", "POD_NAMESPACE": self.namespace,
                "KEDA_CLUSTER_OBJECT_NAMESPACE": self.namespace, "KUBECONFIG": str(self.kubeconfig)}

    def _add(self, name: str, args: list[str], ready) -> Component:
        comp = Component(name, args, self.workdir / "logs" / f"{name}.log", ready, env=self._env())
        self.components[name] = comp
        return comp.start(timeout_s=120)

    def start_operator(self, binary: Path, cert_dir: Path) -> Component:
        self.health_port, self.grpc_port = free_port(), free_port()
        ca_dir = self.workdir / "scaler-ca"
        ca_dir.mkdir(parents=True, exist_ok=True)
        for i, ca in enumerate(self.scaler_cas):  # KEDA reads them once, at its first TLS client
            shutil.copyfile(ca, ca_dir / f"{i}-{Path(ca).name}")
        return self._add("keda-operator", [
            str(binary), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
            "--zap-log-level=info", "--zap-encoder=console",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
            f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
            f"--cert-dir={cert_dir}", f"--ca-dir={ca_dir}",
            "--enable-cert-rotation=false", "--enable-webhook-patching=false",
            "--enable-apiservice-patching=false"],
            ready=lambda: http_ok(f"http://127.0.0.1:{self.health_port}/readyz"))

    def start_metrics_apiserver(self, binary: Path, cert_dir: Path) -> Component:
        self.secure_port = free_port()
        kc = str(self.kubeconfig)
        return self._add("keda-metrics-apiserver", [
            str(binary), f"--secure-port={self.secure_port}", "--bind-address=127.0.0.1",
            f"--cert-dir={cert_dir}", f"--tls-cert-file={cert_dir / 'tls.crt'}",
            f"--tls-private-key-file={cert_dir / 'tls.key'}",
            f"--lister-kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            f"--metrics-service-address=127.0.0.1:{self.grpc_port}", f"--port={free_port()}",
            "--zap-log-level=info"],
            ready=lambda: self._listening(self.secure_port))

    @staticmethod
    def _listening(port: int) -> bool:
        import socket

        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    # -- APIService ------------------------------------------------------------------------
    def _claim_apiservice(self) -> None:
        try:
            existing = self.kubectl.json("get", "apiservice", APISERVICE)
        except KubectlError:
            return
        if existing.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by") != MANAGED_BY:
            raise StackError(f"{APISERVICE} already belongs to {existing['spec'].get('service')}: only one "
                             "server can own it (turn our metrics server's APIService off beside KEDA)")

    def register_apiservice(self, ca_cert: Path) -> None:
        self._claim_apiservice()
        self.kubectl.apply(apiservice.manifests(self.namespace, METRICS_SERVICE, self.secure_port, ca_cert,
                                                {"app.kubernetes.io/managed-by": MANAGED_BY,
                                                 "app.kubernetes.io/part-of": "keda-operator"}))
        self._apiservice = True
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            conds = self.kubectl.json("get", "apiservice", APISERVICE).get("status", {}).get("conditions", [])
            if any(c["type"] == "Available" and c["status"] == "True" for c in conds):
                return
            time.sleep(0.5)
        raise StackError(f"{APISERVICE} (KEDA) not Available after 90 s: "
                         f"{self.components['keda-metrics-apiserver'].log_tail()}")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        binaries = ensure_binaries(self.module_dir)
        install_crds(self.kubectl, self.module_dir)
        if self.kubectl.run("get", "namespace", self.namespace, check=False).returncode != 0:
            self.kubectl("create", "namespace", self.namespace)
        cert_dir = self._cert_dir()
        try:
            self.start_operator(binaries["keda-operator"], cert_dir)
            self.start_metrics_apiserver(binaries["keda-adapter"], cert_dir)
            self.register_apiservice(cert_dir / "ca.crt")
        except Exception:
            self.stop()
            raise
        log.info("KEDA running", extra={"operator_grpc": self.grpc_port, "metrics_apiserver": self.secure_port})
        return self

    def stop(self) -> None:
        if self._apiservice:
            # an unavailable APIService slows every discovery call in the cluster: remove it first
            self.kubectl.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
            self.kubectl.run("-n", self.namespace, "delete", "service", METRICS_SERVICE, "--ignore-not-found",
                             check=False)
            self._apiservice = False
        for name in ("keda-metrics-apiserver", "keda-operator"):
            if name in self.components:
                self.components[name].stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m devcluster.keda`: build (or find) KEDA's binaries and print their paths."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name, path in ensure_binaries().items():
        print(name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
