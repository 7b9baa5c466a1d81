"""Leader election on a coordination.k8s.io Lease: only the holder writes."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LeaseElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str,
                 lease_s: int = 15, renew_s: float = 5.0) -> None:
        self.coord = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_s, self.renew_s = lease_s, renew_s
        self._leader = threading.Event()
        self._stop = threading.Event()

    def is_leader(self) -> bool:
        return self._leader.is_set()

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def try_acquire(self) -> bool:
        now = self._now()
        spec = client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=self.lease_s,
                                  renew_time=now, acquire_time=now)
        try:
            lease = self.coord.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self.coord.create_namespaced_lease(self.namespace, client.V1Lease(
                    metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace), spec=spec))
                return True
            except ApiException as exc2:
                if exc2.status == 409:
                    return False
                raise
        s = lease.spec
        expired = (s.renew_time is None or
                   (now - s.renew_time).total_seconds() > (s.lease_duration_seconds or self.lease_s))
        if s.holder_identity != self.identity and not expired:
            return False
        if s.holder_identity == self.identity:
            spec.acquire_time = s.acquire_time or now
        lease.spec = spec
        try:
            self.coord.replace_namespaced_lease(self.name, self.namespace, lease)  # resourceVersion guards it
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                held = self.try_acquire()
            except (ApiException, OSError) as exc:
                log.warning("lease renewal failed", extra={"error": str(exc)[:200]})
                held = False
            if held and not self._leader.is_set():
                log.info("became leader", extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity})
            if not held and self._leader.is_set():
                log.warning("lost leadership", extra={"lease": f"{self.namespace}/{self.name}"})
            (self._leader.set if held else self._leader.clear)()
            self._stop.wait(self.renew_s)

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="leader-election", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
