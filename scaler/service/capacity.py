"""Capacity awareness, pure: pods the scheduler cannot place are not capacity on its way.

A pool whose pods have stayed Pending with PodScheduled=False (reason Unschedulable) longer
than `planner.unschedulable_after_s` is short of cluster capacity (GPUs, most often): raising
its target again only adds pods that cannot run. So such a pool's target is not raised above
the replicas in effect while any of its pods are stuck; lowering it stays allowed (it frees
what the scheduler lacks). Reading the pods is the observer's job (scaler/service/observe.py);
this module only judges plain values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UNSCHEDULABLE = "Unschedulable"  # the scheduler's reason on PodScheduled=False


@dataclass(frozen=True)
class PodState:
    """What capacity awareness needs of one pod."""

    service: str  # the DGD service key (label nvidia.com/dynamo-component)
    phase: str | None
    deleting: bool = False
    scheduled: str | None = None  # PodScheduled condition status: "True", "False", or None (none yet)
    reason: str | None = None
    message: str | None = None
    since: dt.datetime | None = None  # PodScheduled lastTransitionTime


@dataclass(frozen=True)
class Unschedulable:
    """The stuck pods of one pool."""

    pods: int
    since: dt.datetime  # the earliest of their PodScheduled=False transitions
    message: str  # the scheduler's message on the longest-stuck pod

    def describe(self) -> str:
        when = self.since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f"{self.pods} pod{'s' if self.pods != 1 else ''} unschedulable since {when}"
                + (f": {self.message}" if self.message else ""))


def stuck(pod: PodState, now: dt.datetime, after_s: float) -> bool:
    """Pending, not being deleted, and refused by the scheduler for longer than `after_s`."""
    return (pod.phase in (None, "Pending") and not pod.deleting and pod.scheduled == "False"
            and pod.reason == UNSCHEDULABLE and pod.since is not None
            and (now - pod.since).total_seconds() >= after_s)


def unschedulable(pods: list[PodState], now: dt.datetime, after_s: float) -> dict[str, Unschedulable]:
    """Per service, its pods stuck unschedulable for longer than `after_s`."""
    found: dict[str, list[PodState]] = {}
    for pod in pods:
        if stuck(pod, now, after_s):
            found.setdefault(pod.service, []).append(pod)
    out = {}
    for svc, group in found.items():
        oldest = min(group, key=lambda p: p.since)
        out[svc] = Unschedulable(len(group), oldest.since, (oldest.message or "").strip())
    return out


def ready_but_for_capacity(desired: dict[str, int], ready: dict[str, int],
                           stuck_pods: dict[str, Unschedulable]) -> bool:
    """True when every service of the deployment has its replicas Ready except pods the
    scheduler cannot place: the deployment is as ready as the cluster lets it be, so the
    planner may act on it (lower a pool, raise one that is not short), where waiting for a
    Ready that cannot come would freeze every pool."""
    if not stuck_pods:
        return False
    return all(ready.get(svc, 0) + (stuck_pods[svc].pods if svc in stuck_pods else 0) >= want
               for svc, want in desired.items())


def hold_raises(targets: dict[str, int], current: dict[str, int],
                stuck_pods: dict[str, Unschedulable]) -> tuple[dict[str, int], list[str]]:
    """The targets with every raise of a pool that has stuck pods taken back to the replicas in
    effect, and one reason per such pool (kept or not: the decision says why it cannot grow)."""
    out, notes = dict(targets), []
    for svc in sorted(stuck_pods):
        if svc not in out:
            continue
        keep, why = current.get(svc, 0), stuck_pods[svc].describe()
        if out[svc] > keep:
            notes.append(f"InsufficientCapacity: {svc} kept at {keep} (wanted {out[svc]}): {why}")
            out[svc] = keep
        else:
            notes.append(f"InsufficientCapacity: {svc} not raised while {why}")
    return out, notes


def condition_message(stuck_pods: dict[str, Unschedulable]) -> str:
    """The InsufficientCapacity condition's message: the pools and how many pods each."""
    return "; ".join(f"{svc}: {u.describe()}" for svc, u in sorted(stuck_pods.items()))
