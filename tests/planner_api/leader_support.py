"""What the planner's leader-election tests share: the election flags with short periods, the
DGD objects they plan, a decode load that asks for a known number of replicas, and a watch that
records every spec.replicas an adapter takes. Import as `from leader_support import ...` from
tests in this directory."""

from __future__ import annotations

import copy
import threading

from kubernetes import client, watch
from planner_support import DGD, worker_series

from adapter.models import DGDSA_PLURAL, GROUP

# short periods so a takeover fits a test; retry < renew deadline < lease, as the flags require
LEASE_S, RENEW_DEADLINE_S, RETRY_S = 6.0, 4.0, 1.0
INTERVAL_S = 1.0  # the planners' tick
# a standby takes the lease after seeing it unrenewed for LEASE_S (counted from its next try),
# then plans on its next tick; the rest is slack for two loaded cores
TAKEOVER_S = LEASE_S + 2 * RETRY_S + 2 * INTERVAL_S + 20


def election_flags(namespace: str, lease_s: float = LEASE_S, renew_deadline_s: float = RENEW_DEADLINE_S,
                   retry_s: float = RETRY_S) -> tuple[str, ...]:
    """`dynamo-scaling planner`'s flags for leader election on the Lease dynamo-scaling-planner."""
    return ("--leader-election", "--leader-election-namespace", namespace,
            "--leader-election-lease-duration", str(lease_s), "--leader-election-renew-deadline",
            str(renew_deadline_s), "--leader-election-retry-period", str(retry_s))


def dgd(name: str = "llama") -> dict:
    """planner_support.DGD (Frontend, prefill and decode, two decode workers) named `name`."""
    out = copy.deepcopy(DGD)
    out["metadata"]["name"] = name
    return out


def adapter(dgd_name: str, svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"{dgd_name}-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": dgd_name, "serviceName": svc}}}


def decode_load(waiting: int) -> list[dict]:
    """Idle prefill; decode workers at 80% KV with 10 running and `waiting` queued requests:
    with two Ready decode workers the planner wants 2 * (1 + waiting / 10) of them."""
    kv = {"name": "vllm:kv_cache_usage_perc", "value": 0.8, "labels": {"service": "decode", "model_name": "m"}}
    series = [s for s in worker_series("prefill", "decode") if s["labels"]["service"] == "prefill"]
    series += [{"name": "vllm:num_requests_running", "value": 10, "labels": {"service": "decode", "model_name": "m"}},
               {"name": "vllm:num_requests_waiting", "value": waiting,
                "labels": {"service": "decode", "model_name": "m"}}, kv]
    return series


class SpecWatch:
    """Every spec.replicas the adapter takes, from a watch on it (a write that changes nothing
    leaves no trace, so this sees each change once)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.values: list[int] = []
        self.error: Exception | None = None
        self._w = watch.Watch()
        custom = client.CustomObjectsApi(api)
        self._stream = self._w.stream(custom.list_namespaced_custom_object, GROUP, "v1alpha1", namespace,
                                      DGDSA_PLURAL, field_selector=f"metadata.name={name}", timeout_seconds=600)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._stream:
                n = ev["object"]["spec"]["replicas"]
                if not self.values or self.values[-1] != n:
                    self.values.append(n)
        except Exception as exc:  # noqa: BLE001  a broken watch is a failed test, not a thread's traceback
            self.error = exc

    def seen(self) -> list[int]:
        assert self.error is None, f"the watch on the adapter broke: {self.error}"
        return list(self.values)

    def stop(self) -> None:
        self._w.stop()
