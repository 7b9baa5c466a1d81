"""Level-triggered reconciliation: every call moves one DGD or one adapter toward the rules.

Rules: an adapter's spec.replicas is the single source of truth for its service; the DGD only
follows (a direct DGD edit is reverted with a Warning); the DGD decides which adapters exist;
exactly one adapter owns a flagged service (sync.service_owners) and every other adapter that
refers to it, is named for another service, or refers to an unflagged service writes nothing
and reports why (sync.judge).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from kubernetes.client.exceptions import ApiException

from adapter import sync
from adapter.kube import Kube, now_rfc3339
from adapter.metrics import AdapterMetrics
from adapter.models import DGD, DGD_KIND, DGDSA_KIND, parse_dgd, pod_selector
from adapter.scale_client import ScaleClient
from adapter.versions import dgdsa_service

log = logging.getLogger(__name__)


def _conditions(old: list[dict], updates: dict[str, tuple[str, str, str]], generation: int | None) -> list[dict]:
    """Merge (status, reason, message) per type, keeping lastTransitionTime when status holds."""
    by_type = {c["type"]: c for c in old or []}
    out = []
    for ctype, (status, reason, message) in updates.items():
        prev = by_type.get(ctype)
        ltt = prev["lastTransitionTime"] if prev and prev.get("status") == status else now_rfc3339()
        out.append({"type": ctype, "status": status, "reason": reason, "message": message[:32768],
                    "lastTransitionTime": ltt, "observedGeneration": generation or 0})
    return out


class Cache(Protocol):
    """The DGDs and adapters as the controller's watch last saw them."""

    def dgd(self, ns: str, name: str) -> dict | None: ...

    def adapters(self, ns: str) -> list[dict]: ...


class Reconciler:
    def __init__(self, kube: Kube, metrics: AdapterMetrics | None = None, is_leader=lambda: True,
                 autoscalers: Callable[[str, str], Iterable[tuple[str, str, Mapping]]] | None = None,
                 cache: Cache | None = None) -> None:
        """`autoscalers(namespace, adapter)`: (kind, name, scaleTargetRef) of the HPAs and
        ScaledObjects aimed at the adapter, and `cache`: the DGDs and adapters, both from the
        controller's watch; without them every reconcile reads the API server. Writes always
        start from a fresh read (Kube.set_service_replicas) or carry a resourceVersion."""
        self.kube, self.metrics, self.is_leader = kube, metrics or AdapterMetrics(), is_leader
        self.autoscalers, self.cache = autoscalers, cache
        self._scale_clients: dict[str, ScaleClient] = {}
        self._api = kube.custom.api_client

    def _scale(self, ns: str) -> ScaleClient:
        if ns not in self._scale_clients:
            self._scale_clients[ns] = ScaleClient(self._api, ns, versions=self.kube.versions)
        return self._scale_clients[ns]

    def _dgd(self, ns: str, name: str) -> DGD | None:
        if self.cache is not None:
            raw = self.cache.dgd(ns, name)
            return parse_dgd(raw) if raw is not None else None
        got = self.kube.get_dgd(ns, name)
        return got[0] if got else None

    def _adapters(self, ns: str) -> list[dict]:
        return self.cache.adapters(ns) if self.cache is not None else self.kube.list_adapters(ns)

    # -- DGD side: which adapters exist, and no direct edits of adapted replicas -------------
    def reconcile_dgd(self, raw: dict) -> None:
        if not self.is_leader() or raw["metadata"].get("deletionTimestamp"):
            return
        ns, name = raw["metadata"]["namespace"], raw["metadata"]["name"]
        dgd = parse_dgd(raw)
        adapters = self._adapters(ns)
        raws = {a["metadata"]["name"]: a for a in adapters}
        actions = sync.plan_adapters(dgd, [sync.AdapterInfo.from_raw(a, raw["metadata"]["uid"]) for a in adapters])
        for w in actions.create:
            try:
                self.kube.create_adapter(ns, w.name, raw, w.service, w.seed_replicas)
                log.info("adapter created", extra={"adapter": f"{ns}/{w.name}", "replicas": w.seed_replicas})
            except ApiException as exc:
                if exc.status != 409:
                    raise
        for aname in actions.adopt:
            self.kube.adopt_adapter(ns, raws[aname], raw)
            log.info("adapter adopted", extra={"adapter": f"{ns}/{aname}"})
        # only the owner of a service speaks for it: a duplicate or misnamed adapter never does
        for service, aname in actions.owners.items():
            have = raws[aname]
            desired = int(have["spec"]["replicas"])
            svc = dgd.spec.services[service]
            plan = sync.plan_sync(dgd, service, desired, have["metadata"].get("annotations") or {})
            if plan.write_replicas is not None and svc.replicas is not None and have.get("status", {}).get(
                    "replicas") == svc.replicas:
                pass  # adapter changed since its last sync: the adapter side handles it
            elif plan.write_replicas is not None and have.get("status", {}).get("replicas") is not None:
                # the DGD moved away from what the adapter applied: a direct edit
                self.kube.set_service_replicas(ns, name, service, desired)
                self.kube.event(ns, raw, DGD_KIND, "DirectEditReverted",
                                f"spec.services.{service}.replicas is managed by adapter {aname}: "
                                f"reverted {svc.effective_replicas} -> {desired}; scale the adapter instead",
                                warning=True)
                self.metrics.reverts.inc()
        for aname in actions.delete:
            self.kube.delete_adapter(ns, aname)
            log.info("adapter removed", extra={"adapter": f"{ns}/{aname}"})

    # -- adapter side: copy spec.replicas to the DGD, report status ------------------------
    def reconcile_adapter(self, raw: dict) -> None:
        if not self.is_leader() or raw["metadata"].get("deletionTimestamp"):
            return
        started = time.perf_counter()
        meta, spec = raw["metadata"], raw["spec"]
        ns, name = meta["namespace"], meta["name"]
        dgd_name, service = spec["dgdRef"]["name"], dgdsa_service(raw)
        desired = int(spec["replicas"])
        dgd = self._dgd(ns, dgd_name)
        plan = sync.plan_sync(dgd, service, desired, meta.get("annotations") or {})
        if dgd is not None:
            uid = dgd.metadata.get("uid")
            me = sync.AdapterInfo.from_raw(raw, uid)
            # the common case (the adapter the DGD's flag created) needs no list of the others
            others = [] if sync.owns_outright(dgd, me) else [
                sync.AdapterInfo.from_raw(a, uid) for a in self._adapters(ns)
                if a["spec"]["dgdRef"]["name"] == dgd_name and a["metadata"]["name"] != name]
            verdict = sync.judge(dgd, me, [me, *others])
            self.metrics.owns.labels(ns, name).set(1 if verdict.owns else 0)
            if not verdict.owns:
                plan = sync.SyncPlan(None, verdict.reason, verdict.message, False)
        status = dict(raw.get("status") or {})
        ok = plan.ok
        message, reason = plan.message, plan.reason
        if plan.write_replicas is not None:
            try:
                dgd = self.kube.set_service_replicas(ns, dgd_name, service, plan.write_replicas)
                status["lastScaleTime"] = now_rfc3339()
                log.info("service scaled", extra={"adapter": f"{ns}/{name}", "replicas": plan.write_replicas,
                                                  "ms": round((time.perf_counter() - started) * 1000, 1)})
                self.kube.event(ns, raw, DGDSA_KIND, "Scaled", plan.message)
                self.metrics.scaled.inc()
            except (ApiException, RuntimeError, LookupError) as exc:
                ok, reason, message = False, "UpdateFailed", f"could not update the DGD: {exc}"[:1000]
                self.kube.event(ns, raw, DGDSA_KIND, "UpdateFailed", message, warning=True)
                self.metrics.errors.inc()
        elif not plan.ok and (raw.get("status") or {}).get("conditions", [{}])[0].get("reason") != plan.reason:
            self.kube.event(ns, raw, DGDSA_KIND, plan.reason, plan.message, warning=True)

        svc_spec = dgd.spec.services.get(service) if dgd else None
        svc_status = dgd.status.services.get(service) if dgd and dgd.status else None
        aimed = sync.other_scalers(name, dgd, self.autoscalers(ns, name)) if self.autoscalers \
            else self._scale(ns).other_scalers(name, dgd)
        scalers = sync.Scalers(aimed,
                               (meta.get("annotations") or {}).get(sync.OWNER_ANNOTATION) == "planner")
        writers = sync.replicas_writers(meta.get("managedFields") or [])
        scalers.last_writer = writers[-1] if writers else None
        conflict = scalers.conflict()
        if conflict and not any(c.get("reason") == "ConflictingScalers" and c.get("status") == "False"
                                for c in status.get("conditions") or []):
            self.kube.event(ns, raw, DGDSA_KIND, "ConflictingScalers",
                            f"several scalers write this adapter: {conflict}; keep one", warning=True)
        status.update({
            "replicas": svc_spec.effective_replicas if svc_spec else status.get("replicas", 0),
            "selector": pod_selector(dgd_name, service),
            "observedGeneration": meta.get("generation"),
        })
        if svc_status and svc_status.ready_replicas is not None:
            status["readyReplicas"] = svc_status.ready_replicas
        ready_pods = svc_status.ready_replicas if svc_status and svc_status.ready_replicas is not None else None
        all_ready = ok and svc_spec is not None and ready_pods == svc_spec.effective_replicas
        status["conditions"] = _conditions(raw.get("status", {}).get("conditions", []), {
            "Synced": ("True" if ok else "False", reason if not ok else "InSync", message),
            # a refused adapter says why on Ready too: that is the condition people read first
            "Ready": ("True" if all_ready else "False", "ReplicasReady" if all_ready else (
                reason if not ok else "ReplicasNotReady"), message if not ok else
                f"{ready_pods if ready_pods is not None else 0}/{svc_spec.effective_replicas if svc_spec else desired}"
                " pods ready"),
            "ScalingActive": ("False" if conflict or not ok else "True",
                              "ConflictingScalers" if conflict else (reason if not ok else "ScalingActive"),
                              f"several scalers write this adapter: {conflict}" if conflict else message),
        }, meta.get("generation"))
        if status != (raw.get("status") or {}):  # an unchanged status would only cause another event
            self.kube.patch_adapter_status(ns, name, status)
        self.metrics.observe(ns, name, desired, status.get("replicas"), time.perf_counter() - started)
