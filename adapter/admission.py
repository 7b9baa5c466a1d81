"""Pure admission rules, the same ones the controller applies after the fact (adapter/sync.py):
the webhook refuses up front what the controller would otherwise revert or report."""

from __future__ import annotations

from dataclasses import dataclass

from adapter import sync
from adapter.models import DGD, adapter_name, parse_dgd
from adapter.versions import dgdsa_service


@dataclass(frozen=True)
class Answer:
    allowed: bool
    message: str = ""


ALLOW = Answer(True)


def review_dgd_update(old: dict, new: dict, user: str, exempt: set[str]) -> Answer:
    """A DGD update may not change the replicas of a service an adapter owns (flagged before and
    after the update), unless it comes from an exempt identity (the adapter itself)."""
    if user in exempt:
        return ALLOW
    before, after = parse_dgd(old), parse_dgd(new)
    name = after.metadata.get("name", "")
    edits = []
    for svc, spec in after.spec.services.items():
        prev = before.spec.services.get(svc)
        if prev is None or not (prev.adapter_enabled and spec.adapter_enabled):
            continue
        if prev.effective_replicas != spec.effective_replicas:
            edits.append(f"{svc} {prev.effective_replicas} -> {spec.effective_replicas}: scale the "
                         f"DynamoGraphDeploymentScalingAdapter {adapter_name(name, svc)} instead "
                         f"(kubectl scale dgdsa {adapter_name(name, svc)} --replicas={spec.effective_replicas})")
    if not edits:
        return ALLOW
    return Answer(False, "replicas of a service with a scaling adapter are owned by the adapter; " + "; ".join(edits))


def review_adapter(adapter: dict, replicas: int, dgd: DGD | None, others: list[sync.AdapterInfo],
                   creating: bool) -> Answer:
    """An adapter (being created, updated or scaled to `replicas`) must refer to a service the DGD
    has, must not be a second adapter for a service, and may scale a multinode service to zero
    only with the opt-in annotation. A DGD that does not exist yet is no reason to refuse: the
    controller reports DGDNotFound until it appears."""
    if dgd is None:
        return ALLOW
    meta = adapter.get("metadata") or {}
    service, name = dgdsa_service(adapter), meta.get("name", "")
    plan = sync.plan_sync(dgd, service, replicas, meta.get("annotations") or {})
    if plan.reason in ("ServiceNotFound", "ScaleToZeroRefused"):
        return Answer(False, plan.message)
    if creating:
        dup = sorted(a.name for a in others if a.name != name and not a.deleting
                     and a.dgd == dgd.metadata.get("name") and a.service == service)
        if dup:
            return Answer(False, f"service {service!r} of {dgd.metadata.get('name')} already has the adapter "
                                 f"{dup[0]}; scale {dup[0]} instead of creating a second one")
    return ALLOW
