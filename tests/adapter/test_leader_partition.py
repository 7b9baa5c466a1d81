"""A leader cut off from the API server stops writing at its renew deadline; the standby takes
over, and when the network comes back the old leader writes nothing."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import threading
from urllib.parse import urlparse

import pytest
import yaml
from adapter_process import holds_for
from helpers import wait_for
from test_adapter_ha import MANAGER, _decode, _ready, _replica, _status_replicas, leader_scales_decode_to_3

pytestmark = pytest.mark.cluster
LEASE_S, RENEW_DEADLINE_S, RETRY_S = 15.0, 6.0, 1.0
PERIODS = ("--leader-election-lease-duration", str(LEASE_S), "--leader-election-renew-deadline",
           str(RENEW_DEADLINE_S), "--leader-election-retry-period", str(RETRY_S))


class CuttableProxy:
    """TCP forwarder from 127.0.0.1:<port> to the API server. `cut()` is a partition: bytes on
    open connections are lost (a request sent then never gets an answer) and new connections
    are refused; `restore()` forwards again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = False
        self.generation = 0  # bumped at each restore
        self.forwarded_by_generation: dict[int, int] = {}
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                conn.close()  # refused while cut
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            self._socks += [conn, upstream]
            gen = self.generation
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst, gen), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gen: int) -> None:
        try:
            while data := src.recv(65536):
                if self._cut.is_set():
                    continue  # lost in the partition
                dst.sendall(data)
                self.forwarded_by_generation[gen] = self.forwarded_by_generation.get(gen, 0) + len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self.generation += 1
        self._cut.clear()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for s in self._socks:
            s.close()


def _entries_of(kubectl, namespace: str, manager: str) -> list[tuple[str, dict]]:
    """Every managedFields entry `manager` holds on the DGD, the adapter and the events."""
    out = []
    for what in (("dgd", "llama"), ("dgdsa", "llama-decode"), ("events",)):
        got = kubectl.json("-n", namespace, "get", *what, "--show-managed-fields")
        for obj in got.get("items", [got]):
            out += [(f"{obj['kind']}/{obj['metadata']['name']}", mf)
                    for mf in obj["metadata"].get("managedFields") or [] if mf["manager"] == manager]
    return out


def _written_after(kubectl, namespace: str, manager: str, when: dt.datetime) -> list[tuple[str, dict]]:
    # managedFields times have whole seconds, truncated: an entry later than `when` was written after it
    return [(o, mf) for o, mf in _entries_of(kubectl, namespace, manager)
            if dt.datetime.fromisoformat(mf["time"].replace("Z", "+00:00")) > when]


def _holder(kubectl, namespace: str) -> str | None:
    return kubectl.json("-n", namespace, "get", "lease", "adapter-leader")["spec"].get("holderIdentity")


def test_a_cut_off_leader_stops_writing_and_never_writes_again(cluster, kubectl, namespace, adapter_kubeconfig,
                                                               tmp_path):
    server = urlparse(yaml.safe_load(adapter_kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    proxy = CuttableProxy((server.hostname, server.port))
    cfg = yaml.safe_load(adapter_kubeconfig.read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"  # the API server's cert names 127.0.0.1
    via_proxy = tmp_path / "via-proxy.kubeconfig"
    via_proxy.write_text(yaml.safe_dump(cfg))
    via_proxy.chmod(0o600)
    log = open(tmp_path / "replicas.log", "ab")
    a, _ = _replica(via_proxy, namespace, "replica-a", log, *PERIODS)
    b: subprocess.Popen | None = None
    lead, standby = MANAGER.format("replica-a"), MANAGER.format("replica-b")
    try:
        wait_for(lambda: kubectl.run("-n", namespace, "get", "lease", "adapter-leader", check=False).returncode == 0,
                 what="lease taken")
        assert _holder(kubectl, namespace) == "replica-a"
        b, b_health = _replica(adapter_kubeconfig, namespace, "replica-b", log, *PERIODS)
        wait_for(lambda: _ready(b_health), what="standby watching")
        leader_scales_decode_to_3(kubectl, namespace)
        assert _entries_of(kubectl, namespace, lead) and not _entries_of(kubectl, namespace, standby)

        # the leader last renewed before the cut, so it may not write past cut + renew deadline
        cut_at = dt.datetime.now(dt.timezone.utc)
        proxy.cut()
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=4")
        wait_for(lambda: _holder(kubectl, namespace) == "replica-b", timeout=LEASE_S + 10 * RETRY_S, interval=0.5,
                 what="standby takes the lease")
        wait_for(lambda: _decode(kubectl, namespace) == 4 and _status_replicas(kubectl, namespace) == 4,
                 what="new leader applies the change made during the cut")
        deadline = cut_at + dt.timedelta(seconds=RENEW_DEADLINE_S)
        assert not _written_after(kubectl, namespace, lead, deadline)

        proxy.restore()
        # the new leader stalls, so a change now is the old leader's to take if it still thought it
        # led; the lease cannot pass back to it while the new leader is stopped for less than
        # LEASE_S - RETRY_S (it renewed at most RETRY_S before, and the lease runs LEASE_S on the
        # old leader's clock)
        os.kill(b.pid, signal.SIGSTOP)
        try:
            kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=6")
            wait_for(lambda: proxy.forwarded_by_generation.get(proxy.generation, 0) > 0,
                     timeout=RENEW_DEADLINE_S, what="old leader reaches the API server again")
            margin = RENEW_DEADLINE_S
            holds_for(lambda: _decode(kubectl, namespace) == 4 and not _written_after(kubectl, namespace, lead, deadline),
                      margin, what="old leader leaves everything alone")
            assert _holder(kubectl, namespace) == "replica-b", "the stall outlasted the lease: the test proves nothing"
        finally:
            os.kill(b.pid, signal.SIGCONT)
        wait_for(lambda: _decode(kubectl, namespace) == 6 and _status_replicas(kubectl, namespace) == 6,
                 timeout=LEASE_S, what="the new leader carries the change once it runs again")
        assert _holder(kubectl, namespace) == "replica-b"
        late = _written_after(kubectl, namespace, lead, deadline)
        assert not late, f"the old leader wrote after its renew deadline: {late}"
        assert a.poll() is None  # it was there all along, just not writing
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        proxy.close()
        log.close()
