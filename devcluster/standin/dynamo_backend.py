"""Back each stand-in pod with a real Dynamo process: the frontend, or a mocker worker.

A pod's process starts once its start-up delay has passed (so a worker never takes traffic
before its pod could be Ready), and the pod becomes Ready when the process has registered.
Deleting a pod sends SIGTERM, Dynamo's signal to stop taking new requests and finish the
in-flight ones; the pod object goes only once the process has exited (SIGKILL after
`drain_timeout_s`). A worker whose discovery entries expired while it ran (frozen past the
store's TTL) is drained and started again, as Dynamo on etcd exits on a lost lease. A process
that has not registered `startup_timeout_s` after it started (they register in about a second;
a mocker whose system port another process bound first never does) is killed and started again
on a new port, as a failed start-up probe would have the kubelet do. Every live process is
published as a Prometheus file_sd target labelled with its namespace, DGD, service and pod.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.dynamo.model import ensure_model
from devcluster.dynamo.processes import (DynamoEnv, DynamoProcess, launch, listening_ports,
                                         owned_discovery_files)
from devcluster.prometheus import write_file_sd
from devcluster.standin.backends import PodInfo

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    pod: PodInfo
    first_seen: float
    process: DynamoProcess | None = None
    drain_started: float | None = None
    announced: bool = False
    # discovery entries of the live process, refreshed now and then: removed if it dies, as a
    # lease would expire, so the frontend stops routing to it
    files: list[Path] = field(default_factory=list)
    files_at: float = 0.0
    instances: list[Path] = field(default_factory=list)
    # set when the process outlived its discovery entries (frozen past the store's TTL)
    lease_lost_at: float | None = None


class DynamoBackend:
    def __init__(self, workdir: Path, targets_file: Path | None = None, speedup_ratio: float = 1.0,
                 drain_timeout_s: float = 25.0, model_dir: Path | None = None,
                 startup_timeout_s: float = 30.0) -> None:
        self.workdir = Path(workdir)
        self.env = DynamoEnv(self.workdir / "discovery", model_dir or ensure_model(),
                             speedup_ratio=speedup_ratio)
        self.log_dir = self.workdir / "logs"
        self.targets_file = targets_file
        self.drain_timeout_s = drain_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self._published: list | None = None

    @staticmethod
    def dynamo_namespace(pod: PodInfo) -> str:
        return f"{pod.namespace}-{pod.dgd}"

    # -- PodBackend --------------------------------------------------------------------------
    def start(self, pod: PodInfo) -> None:
        with self._lock:
            self._slots.setdefault(pod.key, _Slot(pod, time.monotonic()))

    def ready(self, pod: PodInfo) -> bool:
        self.start(pod)
        slot = self._slots[pod.key]
        if slot.drain_started is not None:
            return False
        if slot.process is None:
            if time.monotonic() - slot.first_seen < pod.startup_delay_s:
                return False
            slot.process = launch(pod.role, self.dynamo_namespace(pod), self.env, self.log_dir,
                                  name=f"{pod.namespace}.{pod.name}", extra_args=pod.args)
            log.info("process started", extra={"pod": pod.name, "role": pod.role, "pid": slot.process.pid,
                                               "port": slot.process.port})
            self._publish()
        proc = slot.process
        if not proc.alive:
            # a crashed process is started again on the next pass, as a kubelet would restart it
            self._crashed(slot)
            return False
        if slot.lease_lost_at is not None:
            if time.monotonic() - slot.lease_lost_at > self.drain_timeout_s:
                proc.kill()
            return False
        if not proc.registered():
            if time.monotonic() - proc.started_at > self.startup_timeout_s:
                # e.g. a worker whose system port was bound by another process first stays up
                # without a health endpoint: start it again, as a failed start-up probe would
                log.warning("process did not register in time: restarting it", extra={
                    "pod": pod.name, "pid": proc.pid, "port": proc.port, "after_s": self.startup_timeout_s,
                    "log": proc.log_tail(400)})
                proc.kill()
                self._forget_process(slot)
            return False
        if not slot.announced and proc.registered_at is not None:
            slot.announced = True
            if pod.role != "frontend":
                self._refresh_files(slot)
            log.info("process registered", extra={
                "pod": pod.name, "role": pod.role, "startup_s": round(proc.registered_at - proc.started_at, 2)})
        return True

    def healthy(self, pod: PodInfo) -> bool:
        slot = self._slots.get(pod.key)
        if slot is None or slot.process is None:
            # not ours (yet), e.g. after the operator restarted: start it through `ready`
            return False
        if not slot.process.alive:
            self._crashed(slot)
            return False
        if slot.lease_lost_at is not None:
            return False
        if pod.role != "frontend" and time.monotonic() - slot.files_at > 5.0:
            self._refresh_files(slot)
        return not self._lease_lost(slot)

    def _refresh_files(self, slot: _Slot) -> None:
        files = owned_discovery_files(self.env.discovery_dir, listening_ports(slot.process.pid))
        if files:
            slot.files = files
        # its instance entries, once seen, stay the ones to watch: an expiry may take them alone
        slot.instances = slot.instances or [p for p in files if p.parent.name == "instances"]
        slot.files_at = time.monotonic()

    def _lease_lost(self, slot: _Slot) -> bool:
        """A worker whose instance entries are gone while it runs was frozen past the store's TTL
        and expired by another process: nothing routes to it and it never registers again. Dynamo
        on etcd exits when its lease is lost, so do the same: drain it, then start it again."""
        if not slot.instances or any(p.exists() for p in slot.instances):
            return False
        log.warning("discovery entries expired while the process ran: restarting it",
                    extra={"pod": slot.pod.name, "pid": slot.process.pid, "entries": len(slot.files)})
        slot.lease_lost_at = time.monotonic()
        slot.process.drain()
        return True

    def _crashed(self, slot: _Slot) -> None:
        proc = slot.process
        log.warning("process exited", extra={"pod": slot.pod.name, "code": proc.proc.returncode if proc else None,
                                             "log": proc.log_tail(400) if proc else ""})
        self._forget_process(slot)

    def _forget_process(self, slot: _Slot) -> None:
        """Clear a slot whose process is gone, so the next pass starts it again at once."""
        for path in slot.files:
            path.unlink(missing_ok=True)
        if slot.files:
            log.info("stale discovery entries removed", extra={"pod": slot.pod.name, "entries": len(slot.files)})
        slot.files, slot.instances, slot.files_at = [], [], 0.0
        slot.process, slot.announced, slot.lease_lost_at = None, False, None
        slot.first_seen = time.monotonic() - slot.pod.startup_delay_s
        self._publish()

    def stop(self, pod: PodInfo) -> bool:
        slot = self._slots.get(pod.key)
        if slot is None or slot.process is None or not slot.process.alive:
            self._forget(pod.key)
            return True
        now = time.monotonic()
        if slot.drain_started is None:
            slot.drain_started = now
            slot.process.drain()
            log.info("draining", extra={"pod": pod.name, "pid": slot.process.pid})
        elif now - slot.drain_started > self.drain_timeout_s:
            log.warning("drain timed out, killing", extra={"pod": pod.name, "pid": slot.process.pid})
            slot.process.kill()
        if slot.process.alive:
            return False
        log.info("process exited after drain", extra={
            "pod": pod.name, "drain_s": round(time.monotonic() - slot.drain_started, 2)})
        self._forget(pod.key)
        return True

    def close(self) -> None:
        with self._lock:
            procs = [s.process for s in self._slots.values() if s.process is not None]
            self._slots.clear()
        for p in procs:
            p.drain()
        for p in procs:
            p.stop(timeout=10.0)
        self._publish()

    # -- introspection for tests and the demo ---------------------------------------------
    def processes(self) -> list[tuple[PodInfo, DynamoProcess]]:
        with self._lock:
            return [(s.pod, s.process) for s in self._slots.values()
                    if s.process is not None and s.process.alive]

    # -- internals -------------------------------------------------------------------------
    def _forget(self, key: str) -> None:
        with self._lock:
            self._slots.pop(key, None)
        self._publish()

    def _publish(self) -> None:
        if self.targets_file is None:
            return
        targets = sorted(
            (proc.address, {
                "namespace": pod.namespace, "dgd": pod.dgd, "service": pod.service, "pod": pod.name,
                "dynamo_namespace": self.dynamo_namespace(pod), "component_type": pod.role,
            })
            for pod, proc in self.processes()
        )
        if targets != self._published:
            write_file_sd(self.targets_file, targets)
            self._published = targets
