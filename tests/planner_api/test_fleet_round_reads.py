"""A fleet round reads the cluster once per namespace and kind, shared by its DGDs, on the real
control plane: one LIST each of the policies, DGDs, adapters, HPAs, ScaledObjects and pods, and
no per-DGD GET; a /scale write still carries the resourceVersion of the listed adapter its
decision came from, so it fails when the replicas changed since; and a policy status is not
rewritten when only the decision's wording changed."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import yaml
from helpers import wait_for
from kubernetes import client, config

from adapter.scale_client import ScaleConflict
from scaler.control.auth import StaticTokenAuthorizer
from scaler.service import config as service_config
from scaler.service.actuate import ScaleActuator
from scaler.service.leadership import GuardedScaleClient
from scaler.service.service import Options, PlannerService

pytestmark = pytest.mark.cluster

NAMES = ("a", "b", "c")


def _dgd(name: str) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": name},
            "spec": {"services": {
                "Frontend": {"componentType": "frontend", "replicas": 1},
                "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 1,
                            "scalingAdapter": {"enabled": True}},
                "decode": {"componentType": "worker", "subComponentType": "decode", "replicas": 2,
                           "scalingAdapter": {"enabled": True}}}}}


def _adapter(dgd: str, svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"{dgd}-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": dgd, "serviceName": svc}}}


def _policy(name: str) -> dict:
    return {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
            "metadata": {"name": name}, "spec": {"dgdRef": {"name": name}, "sla": {"ttftMs": 500, "itlMs": 50}}}


class Requests:
    """Counts the Kubernetes requests an ApiClient makes, as `<method> <path without the namespace>`."""

    def __init__(self, api: client.ApiClient) -> None:
        self.seen: Counter = Counter()
        original = api.call_api

        def counted(method, url, *args, **kwargs):
            path = url.split("?")[0].rsplit("/namespaces/", 1)[-1].partition("/")[2]
            self.seen[f"{method} {path}"] += 1
            return original(method, url, *args, **kwargs)

        api.call_api = counted


def test_a_round_lists_each_kind_once_per_namespace_and_writes_on_what_it_listed(
        cluster, kubectl, namespace, prometheus, tmp_path):
    ns = namespace
    kubectl.apply([_dgd(n) for n in NAMES], ns)
    kubectl.apply([_adapter(n, svc, k) for n in NAMES for svc, k in (("prefill", 1), ("decode", 2))], ns)
    kubectl.apply([_policy(n) for n in NAMES], ns)
    path = tmp_path / "planner.yaml"
    path.write_text(yaml.safe_dump({"fleet": {"namespaces": [ns], "gpu_budget": 100, "resync_s": 3600},
                                    "planner": {"interval_s": 5}}))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    svc = PlannerService(service_config.load(path), api, Options(prometheus_url=prometheus.url, insecure_http=True),
                         StaticTokenAuthorizer("round-reads-token-0123456789"))
    svc.run_once()  # discovery, the policies' first listing and status
    assert sorted(d.name for d in svc.deployments) == list(NAMES)
    requests = Requests(api)
    svc.run_once()
    reads = {k: n for k, n in requests.seen.items() if k.startswith("GET")}
    # one LIST per kind for the three DGDs; no GET of one DGD, adapter, /scale or policy
    assert reads == {"GET dynamoscalingpolicies": 1, "GET dynamographdeployments": 1,
                     "GET dynamographdeploymentscalingadapters": 1, "GET horizontalpodautoscalers": 1,
                     "GET scaledobjects": 1, "GET pods": 1}, requests.seen
    assert all(d.last_error is None for d in svc.deployments), [d.last_error for d in svc.deployments]
    assert all(d.observer.reads is None for d in svc.deployments)  # the round's reads end with it

    # a write is a compare-and-swap on the listed adapter: replicas changed since the LIST refuse it
    a, b = svc.deployments[0], svc.deployments[1]
    for d in (a, b):
        d.observer.scale = GuardedScaleClient(api, ns, lambda: None)
        d.loop.actuator = ScaleActuator(d.observer.scale, d.name)
    reads = svc.fleet.reads()
    a.observer.reads = b.observer.reads = reads
    assert a.observer.observe().current == {"prefill": 1, "decode": 2}
    assert b.observer.observe().current == {"prefill": 1, "decode": 2}
    kubectl("-n", ns, "scale", "dgdsa", "a-decode", "--replicas=4")
    with pytest.raises(ScaleConflict, match="went from 2 to 4"):
        a.loop.actuator.scale("decode", 3)
    b.loop.actuator.scale("decode", 3)  # unchanged since listed: written
    assert kubectl.json("-n", ns, "get", "dgdsa", "b-decode")["spec"]["replicas"] == 3

    # the policy status: not rewritten when only the decision's wording (its numbers) changed,
    # rewritten when the plan did
    c = svc.deployments[2]
    wait_for(lambda: kubectl.json("-n", ns, "get", "dsp", "c").get("status", {}).get("lastDecision"),
             what="c's policy status")
    last = c.loop.last
    requests.seen.clear()
    c.loop.last = dataclasses.replace(last, record=dataclasses.replace(last.record,
                                                                       reason=last.record.reason + " (again)"))
    c.write_policy_status(svc.fleet.conditions[f"{ns}/c"])
    assert requests.seen["PATCH dynamoscalingpolicies/c/status"] == 0, requests.seen
    c.loop.last = dataclasses.replace(last, record=dataclasses.replace(last.record,
                                                                       targets={"prefill": 1, "decode": 3}))
    c.write_policy_status(svc.fleet.conditions[f"{ns}/c"])
    assert requests.seen["PATCH dynamoscalingpolicies/c/status"] == 1, requests.seen
    assert kubectl.json("-n", ns, "get", "dsp", "c")["status"]["plan"] == {"prefill": 1, "decode": 3}
