"""Start Dynamo's own frontend and mocker workers as local processes.

They run on CPU without etcd or NATS: discovery goes through files in one directory, requests
over TCP, events over ZMQ, and every listener binds 127.0.0.1. Each process gets its own
session (so a signal reaches all of it) and dies with the process that started it.

    env = DynamoEnv(discovery_dir=tmp / "discovery", model_dir=ensure_model())
    fe = launch("frontend", "ns1-llm", env, tmp / "logs")
    dec = launch("decode", "ns1-llm", env, tmp / "logs")
    wait_until(dec.registered)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.dynamo.model import MODEL_NAME
from devcluster.procs import die_with_parent, free_port, stop_child

ROLES = ("frontend", "prefill", "decode", "agg")
# Dynamo's component names: decode (and aggregated) workers serve `backend`, prefill `prefill`
COMPONENT = {"prefill": "prefill", "decode": "backend", "agg": "backend"}
# Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit number, so stay below the ephemeral range
PORT_RANGE = (20000, 32000)
_LOCAL_HOSTS = ("DYN_TCP_RPC_HOST", "DYN_TCP_RESPONSE_STREAM_HOST", "DYN_EVENT_PLANE_HOST",
                "DYN_SYSTEM_HOST", "DYN_HTTP_RPC_HOST", "DYN_HTTP_HOST")


@dataclass(frozen=True)
class DynamoEnv:
    discovery_dir: Path
    model_dir: Path
    model_name: str = MODEL_NAME
    python: str = sys.executable
    speedup_ratio: float = 1.0
    router_mode: str = "kv"
    # a request routed to a worker in the instant it leaves (scale-down) moves to another worker
    # instead of failing; Dynamo's default of 0 turns that off
    migration_limit: int = 3

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DYN_DISCOVERY_BACKEND": "file", "DYN_FILE_KV": str(self.discovery_dir),
            "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq",
            "DYN_LOGGING_JSONL": "false", "NO_COLOR": "1",
        })
        env.update({name: "127.0.0.1" for name in _LOCAL_HOSTS})
        return env


@dataclass
class DynamoProcess:
    role: str
    dynamo_namespace: str
    port: int  # frontend: HTTP API and /metrics; workers: system port with /health and /metrics
    proc: subprocess.Popen
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)
    registered_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def registered(self) -> bool:
        """The frontend answers /health; a worker reports its `generate` endpoint ready, which it
        does once it is in discovery and can take requests."""
        if not self.alive:
            return False
        if self.registered_at is not None:
            return True
        try:
            with urllib.request.urlopen(f"http://{self.address}/health", timeout=1) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:  # 503 until every health check passes: still informative
            raw = exc.read()
        except OSError:
            return False
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return False
        ok = (body.get("status") == "healthy" if self.role == "frontend"
              else (body.get("endpoints") or {}).get("generate") == "ready")
        if ok:
            self.registered_at = time.monotonic()
        return ok

    def rss_bytes(self) -> int:
        """Resident memory of the process (its children too, if any)."""
        total = 0
        for pid in [self.pid, *_children(self.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def drain(self) -> None:
        """Ask the process to finish in-flight requests and exit (SIGTERM, once)."""
        if self.alive:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        stop_child(self.proc, timeout=0.0)

    def stop(self, timeout: float = 30.0) -> None:
        stop_child(self.proc, timeout)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def command(role: str, dynamo_namespace: str, port: int, env: DynamoEnv,
            extra_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    common = ["--model-path", str(env.model_dir), "--model-name", env.model_name]
    if role == "frontend":
        return [env.python, "-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port", str(port),
                "--namespace", dynamo_namespace, "--router-mode", env.router_mode,
                "--migration-limit", str(env.migration_limit), *common, *extra_args]
    return [env.python, "-m", "dynamo.mocker", *common,
            "--endpoint", f"dyn://{dynamo_namespace}.{COMPONENT[role]}.generate",
            "--disaggregation-mode", role, "--speedup-ratio", str(env.speedup_ratio), *extra_args]


def launch(role: str, dynamo_namespace: str, env: DynamoEnv, log_dir: Path, name: str | None = None,
           extra_args: list[str] | tuple[str, ...] = ()) -> DynamoProcess:
    """Start one frontend or worker process on a free port; its output goes to `log_dir/<name>.log`."""
    port = free_port(*PORT_RANGE)
    args = command(role, dynamo_namespace, port, env, extra_args)
    environ = env.environ()
    if role != "frontend":
        environ["DYN_SYSTEM_PORT"] = str(port)
    env.discovery_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name or f'{dynamo_namespace}-{role}-{port}'}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=environ, start_new_session=True, preexec_fn=die_with_parent)
    return DynamoProcess(role, dynamo_namespace, port, proc, log_path)


def wait_until(check: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> float:
    """Poll `check` until true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached after {timeout_s:.0f} s")


def _key(path: str) -> str:
    # the file store escapes every non-alphanumeric character of a key
    return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02X}" for c in path)


def registered_instances(discovery_dir: Path, dynamo_namespace: str, role: str) -> int:
    """How many workers of `role` are in the file-based discovery store right now."""
    prefix = _key(f"{dynamo_namespace}/{COMPONENT[role]}/generate/")
    folder = discovery_dir / "v1" / "instances"
    try:
        return sum(1 for p in folder.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return 0


def pids_using(discovery_dir: Path) -> list[int]:
    """Dynamo processes (from any parent) whose discovery store is `discovery_dir`: what is left
    running after whoever started them is gone."""
    needle = f"DYN_FILE_KV={discovery_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                if (entry / "stat").read_text().split(") ", 1)[1][0] != "Z":
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on (from its socket inodes and /proc/net/tcp)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def owned_discovery_files(discovery_dir: Path, ports: set[int]) -> list[Path]:
    """The discovery entries a worker wrote: those that name one of its listening ports, and the
    model cards keyed like its instances. What a lease would expire if it died."""
    if not ports:
        return []
    needles = [f"127.0.0.1:{p}".encode() for p in ports]
    owned: list[Path] = []
    suffixes: set[str] = set()
    for path in discovery_dir.rglob("*"):
        try:
            if path.is_file() and any(n in path.read_bytes() for n in needles):
                owned.append(path)
                if path.parent.name == "instances":
                    suffixes.add(path.name.rsplit("%2F", 1)[-1])
        except OSError:
            continue
    mdc = discovery_dir / "v1" / "mdc"
    if suffixes and mdc.is_dir():
        owned += [p for p in mdc.iterdir() if p.name.rsplit("%2F", 1)[-1] in suffixes]
    return owned
