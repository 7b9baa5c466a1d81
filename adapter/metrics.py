"""The adapter controller's own metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AdapterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.reconciles = Counter("dynamo_adapter_reconciles", "adapter reconciles", registry=r)
        self.duration = Histogram("dynamo_adapter_reconcile_seconds", "adapter reconcile duration", registry=r,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.scaled = Counter("dynamo_adapter_scale_writes", "DGD service replica writes", registry=r)
        self.reverts = Counter("dynamo_adapter_direct_edits_reverted", "direct DGD edits reverted", registry=r)
        self.errors = Counter("dynamo_adapter_sync_errors", "failed DGD updates", registry=r)
        self.desired = Gauge("dynamo_adapter_desired_replicas", "adapter spec.replicas", ["namespace", "adapter"], registry=r)
        self.actual = Gauge("dynamo_adapter_applied_replicas", "replicas in effect on the DGD service",
                            ["namespace", "adapter"], registry=r)
        self.owns = Gauge("dynamo_adapter_owns_service",
                          "1 if the adapter drives its DGD service, 0 if refused (duplicate, misnamed, flag off)",
                          ["namespace", "adapter"], registry=r)

    def observe(self, ns: str, name: str, desired: int, actual: int | None, seconds: float) -> None:
        self.reconciles.inc()
        self.duration.observe(seconds)
        self.desired.labels(ns, name).set(desired)
        if actual is not None:
            self.actual.labels(ns, name).set(actual)
