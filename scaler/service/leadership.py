"""Several planner replicas, one writer: leadership on a coordination.k8s.io Lease.

The election is the adapter's (`adapter.leader.LeaseElector`). Only the leader ticks, writes
adapters through /scale and writes policy status; every replica serves the REST API, whose
changes go to the cluster (the DynamoScalingPolicy, or the state ConfigMap) for the leader to
re-read each tick. A replica that stops leading stops writing at once, and a /scale write that
raced a change of leader fails instead of applying (see `GuardedScaleClient`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Gauge

from adapter.leader import LeaseElector, NotLeader
from adapter.models import DGDSA_PLURAL, GROUP
from adapter.scale_client import ScaleClient, ScaleConflict, ScaleState
from scaler.control.auth import Caller
from scaler.control.state import ControlState, SLATargets
from scaler.control.store import KEY, ConfigMapStore

log = logging.getLogger(__name__)

__all__ = ["GuardedScaleClient", "Leadership", "NotLeader", "SharedConfigMap", "default_identity"]

# a write's timeout when the lease leaves more time than this (connect, read)
WRITE_TIMEOUT = (5.0, 10.0)


def default_identity() -> str:
    """The Lease holder's name: the pod's name (its hostname) and the process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Leadership:
    """Whether this replica may write now. Without an elector (no leader election) it always may."""

    def __init__(self, elector: LeaseElector | None = None) -> None:
        self.elector = elector
        self._was_leader = elector is None

    @classmethod
    def elect(cls, api: client.ApiClient, namespace: str, lease: str, lease_s: float, renew_deadline_s: float,
              retry_s: float, identity: str | None = None) -> Leadership:
        return cls(LeaseElector(api, namespace, lease, identity or default_identity(), lease_s=lease_s,
                                renew_deadline_s=renew_deadline_s, retry_s=retry_s))

    @property
    def enabled(self) -> bool:
        return self.elector is not None

    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    def guard(self) -> float | None:
        """Ask right before each write: raises NotLeader when this replica may not write now;
        else the seconds the write may take (None: no limit from leadership)."""
        return None if self.elector is None else self.elector.write_timeout()

    def became_leader(self) -> bool:
        """True once each time this replica starts to lead (the caller re-reads the cluster's
        state then); also tracks the loss of leadership."""
        now = self.is_leader()
        became, self._was_leader = now and not self._was_leader, now
        return became

    def reachable(self) -> str | None:
        """Why the last lease request failed, None when the API server answered."""
        return None if self.elector is None else self.elector.last_error

    def status(self) -> dict:
        """For /v1/status: whether this replica leads, and the election as it sees it."""
        e = self.elector
        if e is None:
            return {"leader": True, "leader_election": None}
        return {"leader": e.is_leader(), "leader_election": {"identity": e.identity, "holder": e.holder,
                                                             "lease": f"{e.namespace}/{e.name}"}}

    def export(self, registry: CollectorRegistry) -> None:
        """`dynamo_planner_leader`: 1 while this replica leads (always, without leader election)."""
        Gauge("dynamo_planner_leader", "1 while this replica holds the planner's lease and plans; 0 on a standby",
              registry=registry).set_function(lambda: 1.0 if self.is_leader() else 0.0)

    def start(self) -> None:
        if self.elector is not None:
            self.elector.start()

    def stop(self) -> None:
        if self.elector is not None:
            self.elector.stop()


def _timeout(budget: float | None) -> tuple[float, float]:
    if budget is None:
        return WRITE_TIMEOUT
    return (min(WRITE_TIMEOUT[0], budget), min(WRITE_TIMEOUT[1], budget))


class GuardedScaleClient(ScaleClient):
    """/scale writes of a replica under leader election. Each write is a compare-and-swap on the
    adapter as this replica last read it (the observation its decision came from): leadership is
    checked right before it, it carries that read's resourceVersion, and when the adapter changed
    since, it is retried only if spec.replicas is still the value read (a status update in
    between), else refused with ScaleConflict. So a write of a replica that lost the lease fails,
    and a decision taken on replicas another leader has since changed is dropped, not applied."""

    def __init__(self, api: client.ApiClient, namespace: str, guard: Callable[[], float | None],
                 field_manager: str = "dynamo-scaling-planner", attempts: int = 3) -> None:
        super().__init__(api, namespace, field_manager)
        self.guard, self.attempts = guard, attempts
        self._seen: dict[str, ScaleState] = {}

    def get(self, name: str) -> ScaleState:
        st = super().get(name)
        self._seen[name] = st
        return st

    def set(self, name: str, replicas: int, resource_version: str | None = None) -> ScaleState:
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        seen = self._seen.get(name) or self.get(name)
        expected, rv = seen.spec_replicas, resource_version or seen.resource_version
        for _ in range(self.attempts):
            timeout = _timeout(self.guard())  # NotLeader here stops the write
            body = {"metadata": {"resourceVersion": rv}, "spec": {"replicas": int(replicas)}}
            try:
                self.custom.patch_namespaced_custom_object_scale(
                    GROUP, self.versions.dgdsa, self.namespace, DGDSA_PLURAL, name, body,
                    field_manager=self.field_manager, _request_timeout=timeout)
                return self.get(name)
            except ApiException as exc:
                if exc.status != 409:
                    raise
            now = self.get(name)
            if now.spec_replicas != expected:
                raise ScaleConflict(f"adapter {self.namespace}/{name} went from {expected} to {now.spec_replicas} "
                                    "replicas since it was read; the decision taken on it is dropped")
            rv = now.resource_version
        raise ScaleConflict(f"adapter {self.namespace}/{name} kept changing; not written")


class SharedConfigMap:
    """The state ConfigMap (used where the DynamoScalingPolicy CRD is not served) shared by
    replicas: the leader re-reads it each tick, and a change made on any replica is merged into
    the ConfigMap as stored now (guarded by its resourceVersion), not written over it from a
    replica's own copy."""

    def __init__(self, store: ConfigMapStore, default_sla: SLATargets, attempts: int = 5) -> None:
        self.store, self.default_sla, self.attempts = store, default_sla, attempts

    def _read(self) -> tuple[ControlState, client.V1ConfigMap | None]:
        cm = self.store.raw()
        raw = ((cm.data or {}).get(KEY) if cm is not None else None)
        if not raw:
            return ControlState(sla=self.default_sla), cm
        return ControlState.from_persisted(json.loads(raw), self.default_sla), cm

    def refresh(self, state: ControlState) -> None:
        """Take the stored state into `state` in place (its decision history stays)."""
        fresh, _ = self._read()
        state.sla, state.paused, state.advisory = fresh.sla, fresh.paused, fresh.advisory
        state.overrides, state.sla_request_generation = fresh.overrides, fresh.sla_request_generation

    @staticmethod
    def merge(stored: ControlState, before: ControlState, after: ControlState) -> ControlState:
        """`stored` with what changed from `before` to `after` (fields, and overrides per pool)."""
        for f in ("sla", "paused", "advisory", "sla_request_generation"):
            if getattr(after, f) != getattr(before, f):
                setattr(stored, f, getattr(after, f))
        for svc in set(before.overrides) | set(after.overrides):
            if before.overrides.get(svc) != after.overrides.get(svc):
                if svc in after.overrides:
                    stored.overrides[svc] = after.overrides[svc]
                else:
                    stored.overrides.pop(svc, None)
        return stored

    def save_change(self, before: ControlState, after: ControlState, caller: Caller) -> ControlState:
        core, ns, name = self.store.core, self.store.namespace, self.store.name
        for _ in range(self.attempts):
            stored, cm = self._read()
            merged = self.merge(stored, before, after)
            meta = {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "dynamo-scaling-planner"}}
            if cm is not None:
                meta["resourceVersion"] = cm.metadata.resource_version
                meta["annotations"] = cm.metadata.annotations
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                    "data": {KEY: json.dumps(merged.to_persisted(), indent=1, sort_keys=True)}}
            try:
                if cm is None:
                    core.create_namespaced_config_map(ns, body)
                else:
                    core.replace_namespaced_config_map(name, ns, body)
                return merged
            except ApiException as exc:
                if exc.status not in (409, 404):  # changed or created since read: merge again
                    raise
        raise RuntimeError(f"ConfigMap {ns}/{name} kept changing; the change was not saved")
