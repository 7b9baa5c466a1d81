"""A real Kubernetes control plane on localhost: etcd, kube-apiserver, kube-controller-manager.

State lives in one directory (certs, etcd data, logs, kubeconfig, `state.json` with pids and
ports). `up()` reuses a healthy running plane, `down()` stops it and removes the state.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from devcluster import build, certs
from devcluster.procs import alive, free_port, spawn, terminate

log = logging.getLogger(__name__)

CONTROLLERS = (
    "horizontal-pod-autoscaler-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-token-controller",
    "serviceaccount-controller",
)
NODE_NAME = "devcluster-node"


def default_state_dir() -> Path:
    return build.cache_root() / "devcluster" / "state"


@dataclass
class PlaneState:
    state_dir: str
    kubernetes_version: str
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    hpa_sync_period_s: float
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0

    @property
    def dir(self) -> Path:
        return Path(self.state_dir)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def pki(self, name: str) -> Path:
        return self.dir / "pki" / name


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def load_state(state_dir: Path | None = None) -> PlaneState | None:
    path = _state_file(state_dir or default_state_dir())
    if not path.exists():
        return None
    try:
        return PlaneState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def _save(state: PlaneState) -> None:
    tmp = _state_file(state.dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(_state_file(state.dir))


def _ssl_context(state: PlaneState) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(state.pki("ca.crt")))
    ctx.load_cert_chain(str(state.pki("admin.crt")), str(state.pki("admin.key")))
    return ctx


def api_get(state: PlaneState, path: str, timeout: float = 2.0) -> tuple[int, str]:
    req = urllib.request.Request(state.server + path)
    try:
        with urllib.request.urlopen(req, context=_ssl_context(state), timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def healthy(state: PlaneState) -> bool:
    if not all(alive(pid) for pid in state.pids.values()) or not state.pids:
        return False
    try:
        code, _ = api_get(state, "/readyz")
    except (OSError, ssl.SSLError):
        return False
    return code == 200


def write_kubeconfig(state: PlaneState, path: Path, user: str = "admin", cert: Path | None = None,
                     key: Path | None = None, token: str | None = None) -> Path:
    user_entry: dict[str, str] = {}
    if token:
        user_entry["token"] = token
    else:
        user_entry["client-certificate"] = str(cert or state.pki("admin.crt"))
        user_entry["client-key"] = str(key or state.pki("admin.key"))
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": {
            "server": state.server, "certificate-authority": str(state.pki("ca.crt"))}}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": user}}],
        "current-context": "devcluster",
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def _wait(what: str, check, timeout: float, pid: int, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive(pid):
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"{what} exited during start-up; last log lines:\n{tail}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (log: {log_path})")


def _etcd_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return b'"true"' in resp.read()
    except OSError:
        return False


def _start_etcd(state: PlaneState, bins: build.Binaries) -> None:
    data = state.dir / "etcd"
    client = f"http://127.0.0.1:{state.etcd_port}"
    peer = f"http://127.0.0.1:{state.etcd_peer_port}"
    logp = state.dir / "logs" / "etcd.log"
    pid = spawn([
        str(bins.path("etcd")), "--name=devcluster", f"--data-dir={data}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=devcluster={peer}", "--unsafe-no-fsync=true",
        "--quota-backend-bytes=2147483648", "--log-level=warn",
    ], logp)
    state.pids["etcd"] = pid
    _wait("etcd", lambda: _etcd_ready(state.etcd_port), 30, pid, logp)


def _start_apiserver(state: PlaneState, bins: build.Binaries) -> None:
    p = state.pki
    logp = state.dir / "logs" / "kube-apiserver.log"
    pid = spawn([
        str(bins.path("kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
        f"--cert-dir={state.dir / 'pki'}",
        f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
        f"--client-ca-file={p('ca.crt')}",
        f"--secure-port={state.apiserver_port}", "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC",
        "--disable-admission-plugins=ServiceAccount",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={p('sa.pub')}",
        f"--service-account-signing-key-file={p('sa.key')}",
        "--endpoint-reconciler-type=none",
        f"--requestheader-client-ca-file={p('front-proxy-ca.crt')}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p('front-proxy-client.crt')}",
        f"--proxy-client-key-file={p('front-proxy-client.key')}",
        "--enable-aggregator-routing=false",
        "--profiling=false",
        "--v=1",
    ], logp)
    state.pids["kube-apiserver"] = pid

    def ready() -> bool:
        try:
            return api_get(state, "/readyz")[0] == 200
        except (OSError, ssl.SSLError):
            return False

    _wait("kube-apiserver", ready, 90, pid, logp)


def _start_controller_manager(state: PlaneState, bins: build.Binaries) -> None:
    logp = state.dir / "logs" / "kube-controller-manager.log"
    pid = spawn([
        str(bins.path("kube-controller-manager")),
        f"--kubeconfig={state.kubeconfig}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        f"--service-account-private-key-file={state.pki('sa.key')}",
        f"--root-ca-file={state.pki('ca.crt')}",
        f"--horizontal-pod-autoscaler-sync-period={state.hpa_sync_period_s:g}s",
        "--secure-port=0",
        "--v=1",
    ], logp)
    state.pids["kube-controller-manager"] = pid
    # It has no health port with --secure-port=0: give it a moment to fail on bad flags.
    time.sleep(1.0)
    if not alive(pid):
        raise RuntimeError("kube-controller-manager exited at start-up:\n"
                           + logp.read_text(errors="replace")[-3000:])


def _bootstrap_objects(state: PlaneState, bins: build.Binaries) -> None:
    """Objects a kubelet-less cluster needs: one Node for pods to be bound to."""
    import subprocess

    node = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
    }
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig)}
    subprocess.run([str(bins.path("kubectl")), "apply", "-f", "-"], input=json.dumps(node),
                   text=True, env=env, check=True, capture_output=True)


# below the kernel's ephemeral range (32768+), so outgoing connections cannot take them between
# picking and binding; Dynamo's local processes use 20000-32000
PORT_RANGE = (10000, 20000)
PORT_ATTEMPTS = 3


def up(state_dir: Path | None = None, *, hpa_sync_period_s: float = 15.0) -> PlaneState:
    """Start the plane, or return the running one if it is healthy."""
    state_dir = state_dir or default_state_dir()
    current = load_state(state_dir)
    if current and healthy(current):
        log.info("control plane already running", extra={"server": current.server})
        return current
    if current:
        down(state_dir)

    bins = build.ensure_binaries()
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return _start(state_dir, bins, hpa_sync_period_s)
        except RuntimeError as exc:
            # a port picked free can be taken before the server binds it; pick again
            if "address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                raise
            log.warning("a control-plane port was taken meanwhile; starting again on other ports",
                        extra={"attempt": attempt})
    raise AssertionError("unreachable")


def _start(state_dir: Path, bins: build.Binaries, hpa_sync_period_s: float) -> PlaneState:
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    certs.make_cluster_pki(state_dir / "pki")
    state = PlaneState(
        state_dir=str(state_dir),
        kubernetes_version=build.kubernetes_version(),
        etcd_port=free_port(*PORT_RANGE), etcd_peer_port=free_port(*PORT_RANGE),
        apiserver_port=free_port(*PORT_RANGE),
        hpa_sync_period_s=hpa_sync_period_s, started_at=time.time(),
    )
    _save(state)
    try:
        _start_etcd(state, bins)
        _save(state)
        _start_apiserver(state, bins)
        _save(state)
        write_kubeconfig(state, state.kubeconfig)
        _start_controller_manager(state, bins)
        _save(state)
        _bootstrap_objects(state, bins)
    except BaseException:
        down(state_dir)
        raise
    log.info("control plane up in %.1f s", time.monotonic() - started,
             extra={"server": state.server, "kubeconfig": str(state.kubeconfig)})
    return state


def restart_apiserver(state_dir: Path | None = None) -> PlaneState:
    """Stop and start kube-apiserver alone (same ports, certs and data), as an outage would."""
    state_dir = state_dir or default_state_dir()
    state = load_state(state_dir)
    if not state:
        raise RuntimeError(f"no control plane in {state_dir}")
    pid = state.pids.get("kube-apiserver")
    if pid and alive(pid):
        terminate(pid)
    _start_apiserver(state, build.ensure_binaries())
    _save(state)
    return state


def down(state_dir: Path | None = None) -> bool:
    """Stop every process of the plane and remove its state. True if something was running."""
    state_dir = state_dir or default_state_dir()
    state = load_state(state_dir)
    found = False
    if state:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            pid = state.pids.get(name)
            if pid and alive(pid):
                found = True
                terminate(pid)
    shutil.rmtree(state_dir, ignore_errors=True)
    return found


def status(state_dir: Path | None = None) -> dict[str, object]:
    state = load_state(state_dir or default_state_dir())
    if not state:
        return {"running": False}
    return {
        "running": healthy(state),
        "server": state.server,
        "kubeconfig": str(state.kubeconfig),
        "kubernetes_version": state.kubernetes_version,
        "processes": {n: {"pid": p, "alive": alive(p)} for n, p in state.pids.items()},
        "hpa_sync_period_s": state.hpa_sync_period_s,
    }


def kubectl_path() -> Path:
    return build.ensure_binaries(only=("kubectl",)).path("kubectl")
