"""Start and stop long-running local processes that outlive the Python process that started them
(the control plane is shared by `devcluster up`, the tests and the demo)."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


# port -> when it was handed out: a process binds its port only once it is up, so a port handed to
# one of several processes starting together stays taken for a while even though nothing listens yet
_RESERVED: dict[int, float] = {}
_RESERVED_LOCK = threading.Lock()
RESERVE_S = 120.0


def free_port(low: int | None = None, high: int | None = None) -> int:
    """A free TCP port on 127.0.0.1: any the kernel picks, or a random one in [low, high). A port
    is not handed out again by this process for `RESERVE_S`."""
    with _RESERVED_LOCK:
        now = time.monotonic()
        for port, at in list(_RESERVED.items()):
            if now - at > RESERVE_S:
                del _RESERVED[port]
        if low is None or high is None:
            candidates = [0] * 50
        else:
            candidates = random.sample(range(low, high), min(high - low, 200))
        for want in candidates:
            if want in _RESERVED:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", want))
                except OSError:
                    continue
                port = s.getsockname()[1]
            if port not in _RESERVED:
                _RESERVED[port] = now
                return port
    raise RuntimeError(f"no free port in [{low}, {high})" if low is not None else "no free port")


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a detached process in its own session, output to `log_path`; return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        stat = Path(f"/proc/{pid}/stat")
        try:
            return stat.read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for children that must not outlive the process that started them (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def stop_child(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM a child started in its own session, SIGKILL it after `timeout`, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """SIGTERM a child, SIGKILL it after `timeout`, reap it; its exit code (None if never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def poll_until(predicate, timeout_s: float, what: str, interval: float = 0.05):
    """Call `predicate` until it returns something truthy and return that; TimeoutError naming
    `what` after `timeout_s` (a wait that never ends is a failure, not a hang)."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout_s:.0f} s")
        time.sleep(interval)
    return value
