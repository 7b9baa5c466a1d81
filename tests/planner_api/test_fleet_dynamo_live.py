"""The fleet planner on three DGDs served by real Dynamo processes (frontend and mocker workers
behind the stand-in operator), one GPU budget shared by priority: under load the planner scales a
DGD up, the GPUs of all three never exceed the budget (what the adapters ask for, and the worker
pods, draining ones included: a raise waits for the GPUs a cut DGD's workers still hold), and the
lower priority gives way to the higher one."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Self

import httpx
import pytest
from helpers import wait_dgd_ready, wait_for
from kubernetes import client

from devcluster import manifests, scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.stack import LiveStack

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.dynamo]

PRIORITY = {"hi": 2, "mid": 1, "lo": 0}
POOLS = ("prefill", "decode")
# minimums take 6 GPUs (one prefill and one decode worker each): 2 to share
BUDGET = 8
INTERVAL_S = 2


def dgd(name: str) -> dict:
    services = manifests.disaggregated()
    for pool in POOLS:
        services[pool]["resources"] = {"limits": {"gpu": "1"}}
    return manifests.dgd(name, services, scenario.STARTUP_DELAY_S,
                         {"devcluster.dynamo-scaling.io/args-decode":
                          f"--num-gpu-blocks-override {scenario.DECODE_BLOCKS}"})


def policy(name: str) -> dict:
    return {"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
            "metadata": {"name": name},
            "spec": {"dgdRef": {"name": name}, "sla": {"ttftMs": 300, "itlMs": 50}, "priority": PRIORITY[name],
                     "pools": [{"name": pool, "minReplicas": 1, "maxReplicas": 3} for pool in POOLS]}}


def fleet_config(namespace: str) -> dict:
    return {"fleet": {"namespaces": [namespace], "gpu_budget": BUDGET, "resync_s": 5},
            "planner": {"interval_s": INTERVAL_S, "predictor": "holt", "startup_s": 4, "scale_down_hold_s": 8,
                        "scale_down_step": 0.5, "peak_window_s": 0},
            "profile_file": str(scenario.MOCKER_PROFILE)}


class Watch:
    """Samples, every half second, each DGD's workers as its adapters ask for them (what the
    planner wrote) and as pods, draining ones included: one GPU per worker."""

    def __init__(self, api, namespace: str) -> None:
        self.custom, self.core, self.ns = client.CustomObjectsApi(api), client.CoreV1Api(api), namespace
        # per observation: workers the adapters ask for, worker pods, each policy's (BudgetLimited, GPUs granted)
        self.samples: list[tuple[dict[str, int], dict[str, int], dict[str, tuple[bool, int | None]]]] = []
        self.budget: dict[str, str] = {}  # each policy's BudgetLimited, as last seen
        self.events: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        adapters = self.custom.list_namespaced_custom_object(
            "nvidia.com", "v1alpha1", self.ns, "dynamographdeploymentscalingadapters")["items"]
        pods = self.core.list_namespaced_pod(self.ns, label_selector="nvidia.com/dynamo-component in (prefill,decode)")
        spec = {name: sum(a["spec"]["replicas"] for a in adapters if a["spec"]["dgdRef"]["name"] == name)
                for name in PRIORITY}
        held = {name: sum(1 for p in pods.items
                          if p.metadata.labels.get("nvidia.com/dynamo-graph-deployment-name") == name)
                for name in PRIORITY}
        grants = {}
        for name in PRIORITY:
            got = self.custom.get_namespaced_custom_object("scaling.dynamo-scaling.io", "v1alpha1", self.ns,
                                                          "dynamoscalingpolicies", name)
            cond = next((c for c in (got.get("status") or {}).get("conditions", []) if c["type"] == "BudgetLimited"),
                        None)
            if cond:
                gpus = re.search(r"granted (\d+) of|the plan \((\d+) GPUs\)", cond["message"])
                grants[name] = (cond["status"] == "True", int(next(g for g in gpus.groups() if g)) if gpus else None)
                text = f"{name}: {cond['status']} {cond['message']}"
                if self.budget.get(name) != text:
                    self.budget[name] = text
                    self.events.append(f"{len(self.samples)}: {text}")
        self.samples.append((spec, held, grants))

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._sample()
            except Exception:  # noqa: BLE001  the API server goes away at the end of a failed test
                return

    def spec(self, name: str) -> int:
        return self.samples[-1][0][name] if self.samples else 0

    def hi_cut(self) -> tuple[list[int], list[int]]:
        """Observations where hi was cut by the budget, and those of them where lo held more than
        its minimum at the same time. Not every such observation is wrong: a read between two
        policies' status writes of one round mixes rounds, and a DGD in transition keeps what it
        has; a fleet that ignores priority splits the spare GPUs between them all along."""
        cut = [i for i, s in enumerate(self.samples) if s[2].get("hi", (False, 0))[0]]
        return cut, [i for i in cut if (self.samples[i][2].get("lo", (False, 0))[1] or 0) > 2]

    def peak(self, name: str) -> int:
        return max((s[0][name] for s in self.samples), default=0)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


class Load:
    """A steady load on one DGD's frontend, on its own thread, until stopped."""

    def __init__(self, url: str, rate: float, seconds: float) -> None:
        self.result = None
        reqs = synthetic(rate, seconds, input_length=4000, output_length=100)
        self._thread = threading.Thread(target=lambda: setattr(
            self, "result", asyncio.run(run_load(url, reqs, progress_every_s=15))), daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(240)
        assert self.result is not None, "load generator did not finish"


def condition(kubectl, ns: str, name: str, kind: str) -> dict:
    got = kubectl.json("-n", ns, "get", "dynamoscalingpolicy", name)
    return next((c for c in (got.get("status") or {}).get("conditions", []) if c["type"] == kind), {})


def start_three_dgds(stack: LiveStack, kubectl, namespace: str) -> None:
    """Prometheus, the stand-in operator with real Dynamo workers and the adapter, then the three
    DGDs with their policies, Ready."""
    stack.start_prometheus()
    stack.start_standin()
    stack.start_adapter()
    kubectl.apply([dgd(name) for name in PRIORITY] + [policy(name) for name in PRIORITY], namespace)
    for name in PRIORITY:
        wait_dgd_ready(kubectl, namespace, name, stack)


def test_fleet_planner_scales_under_load_within_one_budget_and_lower_priority_gives_way(
        cluster, kubectl, kube_api, namespace, tmp_path):
    with LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, namespace, scenario.STARTUP_DELAY_S) as stack:
        start_three_dgds(stack, kubectl, namespace)
        urls = {name: wait_for(lambda n=name: stack.frontend_url(n), what=f"{name} frontend") for name in PRIORITY}
        for name, url in urls.items():
            wait_for(lambda u=url: httpx.get(f"{u}/v1/models").json()["data"], timeout=30, what=f"{name} model served")
        stack.start_planner(fleet_config(namespace))
        with Watch(kube_api, namespace) as watch:
            # the lowest priority alone under load takes the GPUs nobody else needs
            lo = Load(urls["lo"], rate=10, seconds=150)
            wait_for(lambda: watch.spec("lo") >= 3, timeout=90, interval=1, what="lo scaled up into the spare GPUs")
            # then the highest: it is served, and lo, still under load, gives its GPUs back
            hi = Load(urls["hi"], rate=10, seconds=60)
            wait_for(lambda: watch.spec("hi") >= 3, timeout=90, interval=1, what="hi scaled up")
            wait_for(lambda: watch.spec("lo") < watch.peak("lo")
                     and condition(kubectl, namespace, "lo", "BudgetLimited").get("status") == "True",
                     timeout=60, interval=1, what="lo gave way (BudgetLimited)")
            hi.join()
            lo.join()
        for load in (lo, hi):
            assert load.result[0].failed_unexplained == 0, load.result[0].line()
        # what the planner asked for never exceeded the budget, at any observation
        print("\n".join(watch.events))
        print(f"{len(watch.samples)} observations; peak workers asked for: "
              f"{max(sum(s[0].values()) for s in watch.samples)}, as pods (draining included): "
              f"{max(sum(s[1].values()) for s in watch.samples)}; budget {BUDGET}")
        over = [s[0] for s in watch.samples if sum(s[0].values()) > BUDGET]
        assert not over, over[:5]
        # nor did the worker pods: lo's cut workers drained before hi's new ones started
        over = [s[1] for s in watch.samples if sum(s[1].values()) > BUDGET]
        assert not over, over[:5]
        # the lower priority gives way first: while hi is cut, lo is at its minimum
        cut, lo_over = watch.hi_cut()
        assert cut, "hi was never cut: no contention to judge"
        assert len(lo_over) < len(cut) / 2, (len(lo_over), len(cut), watch.events)
        # mid, idle, kept its minimum throughout and took nothing
        assert {s[0]["mid"] for s in watch.samples} == {2}
