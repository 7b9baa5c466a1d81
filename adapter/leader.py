"""Leader election on a coordination.k8s.io Lease: only the holder writes.

Three periods, as in client-go: the holder renews every `retry_s`; when it has not renewed for
`renew_deadline_s` it stops writing, whatever its election thread is doing (a call on a dead
connection included); another replica takes the lease only after seeing it unchanged for
`lease_s` on its own clock. retry < renew deadline < lease duration, so a holder cut off from
the API server has stopped writing before a standby can take over.

On a clean shutdown the holder, once its guarded work has stopped, releases the lease (as
client-go's ReleaseOnCancel does): it clears holderIdentity and shortens the lease to 1 s, so a
standby takes it at its next try instead of waiting out the lease duration.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

LEASE_S, RENEW_DEADLINE_S, RETRY_S = 15.0, 10.0, 2.0


class NotLeader(Exception):
    """This replica may not write now (it does not hold the lease, or could not renew it in time)."""


def validate_periods(lease_s: float, renew_deadline_s: float, retry_s: float) -> None:
    if not 0 < retry_s < renew_deadline_s < lease_s:
        raise ValueError("leader election needs 0 < retry period < renew deadline < lease duration "
                         f"(got {retry_s}, {renew_deadline_s}, {lease_s})")


class LeaseElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str,
                 lease_s: float = LEASE_S, renew_deadline_s: float = RENEW_DEADLINE_S,
                 retry_s: float = RETRY_S) -> None:
        validate_periods(lease_s, renew_deadline_s, retry_s)
        self.coord = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_s, self.renew_deadline_s, self.retry_s = lease_s, renew_deadline_s, retry_s
        # monotonic time at which the last successful acquire/renew was *sent*: the lease runs
        # from no earlier than that on every other replica's clock
        self._renewed_at: float | None = None
        # the lease record last seen and when it was first seen (other holders expire by this)
        self._observed: tuple | None = None
        self._observed_at = 0.0
        self._was_leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # why the last try to take or renew the lease failed (None: the API server answered)
        self.last_error: str | None = None

    # -- what the write path asks ----------------------------------------------------------
    def is_leader(self) -> bool:
        at = self._renewed_at
        return at is not None and time.monotonic() - at < self.renew_deadline_s

    @property
    def holder(self) -> str | None:
        """The lease's holder as last seen (this replica's identity while it leads)."""
        if self.is_leader():
            return self.identity
        return self._observed[0] if self._observed else None

    def write_timeout(self) -> float:
        """Call right before each write: raises NotLeader past the renew deadline, else returns
        the seconds the write may take (until the lease could pass to another replica)."""
        at, now = self._renewed_at, time.monotonic()
        if at is None or now - at >= self.renew_deadline_s:
            raise NotLeader(f"{self.identity} does not hold lease {self.namespace}/{self.name}")
        return at + self.lease_s - now

    # -- election --------------------------------------------------------------------------
    def _call_timeout(self) -> tuple[float, float]:
        # a renewal that hangs must give way to the next try well before the deadline
        t = max(self.retry_s, self.renew_deadline_s / 2)
        return (min(t, 5.0), t)

    def try_acquire(self) -> bool:
        started = time.monotonic()
        now = dt.datetime.now(dt.timezone.utc)
        timeout = self._call_timeout()
        spec = client.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=math.ceil(self.lease_s),
                                  renew_time=now, acquire_time=now, lease_transitions=0)
        try:
            lease = self.coord.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self.coord.create_namespaced_lease(self.namespace, client.V1Lease(
                    metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace), spec=spec),
                    _request_timeout=timeout)
            except ApiException as exc2:
                if exc2.status == 409:
                    return False
                raise
            self._renewed_at = started
            return True
        s = lease.spec
        record = (s.holder_identity, s.renew_time, s.lease_duration_seconds)
        if record != self._observed:
            self._observed, self._observed_at = record, started
        duration = s.lease_duration_seconds or self.lease_s
        expired = started - self._observed_at > duration
        if s.holder_identity and s.holder_identity != self.identity and not expired:
            self._renewed_at = None  # someone else holds it: stop at once
            return False
        if s.holder_identity == self.identity:
            spec.acquire_time = s.acquire_time or now
            spec.lease_transitions = s.lease_transitions or 0
        else:
            spec.lease_transitions = (s.lease_transitions or 0) + 1
        lease.spec = spec
        try:
            # resourceVersion guards it: of two replicas taking an expired lease, one wins
            self.coord.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._renewed_at = started
        self._observed, self._observed_at = (self.identity, now, spec.lease_duration_seconds), started
        return True

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_acquire()
                self.last_error = None
            except Exception as exc:  # timeouts and connection errors: keep trying until the deadline
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("lease renewal failed", extra={"error": str(exc)[:200]})
            leader = self.is_leader()
            if leader and not self._was_leader:
                log.info("became leader", extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity})
            if not leader and self._was_leader:
                log.warning("lost leadership", extra={"lease": f"{self.namespace}/{self.name}"})
            self._was_leader = leader
            self._stop.wait(self.retry_s)

    def start(self) -> threading.Thread:
        t = self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        t.start()
        return t

    def release(self) -> bool:
        """Stop the election and give the lease up if this replica holds it: no write is allowed
        from here on, and the lease is left free (no holder, 1 s) for a standby's next try. Call
        only once the work the lease guards has stopped, or two replicas could write at once.
        True when the lease was released."""
        self.stop()
        if self._thread is not None:  # no renewal may land after the release
            self._thread.join(sum(self._call_timeout()) + 1)
        self._renewed_at = None
        timeout = self._call_timeout()
        try:
            lease = self.coord.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
            if lease.spec.holder_identity != self.identity:
                return False
            now = dt.datetime.now(dt.UTC)
            lease.spec = client.V1LeaseSpec(holder_identity=None, lease_duration_seconds=1, renew_time=now,
                                            acquire_time=now, lease_transitions=lease.spec.lease_transitions)
            # resourceVersion guards it: a lease another replica took meanwhile stays theirs
            self.coord.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=timeout)
        except Exception as exc:  # noqa: BLE001  the lease then expires as after a crash
            log.warning("lease not released", extra={"lease": f"{self.namespace}/{self.name}",
                                                     "error": str(exc)[:200]})
            return False
        log.info("lease released", extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity})
        return True

    def stop(self) -> None:
        self._stop.set()
