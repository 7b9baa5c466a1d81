"""The fleet planner's whole story in one scenario on real Dynamo processes (frontend and mocker
workers behind the stand-in operator): three DGDs, two planner replicas with leader election and
one GPU budget. A pin applied with kubectl and one set through REST on the standby meet in the
policies and in both replicas' API; the leader is killed (SIGKILL) while one DGD is under load and
the standby takes over within the lease and plans on (the loaded DGD keeps what it has, pins hold,
the budget holds at every observation); and the new leader's what-if for the loaded DGD answers
what `dynamo-scaling what-if` replays of the same window under the same settings."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import yaml
from helpers import assert_same_what_if, wait_for
from leader_support import LEASE_S, RETRY_S, SpecWatch, election_flags
from planner_support import AUTH, REPO, TOKEN, metric
from test_fleet_dynamo_live import (
    INTERVAL_S,
    PRIORITY,
    Load,
    Watch,
    fleet_config,
    policy,
    start_three_dgds,
)

from devcluster import launch, scenario
from devcluster.stack import LiveStack

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.dynamo]

# minimums take 6 GPUs, the two pins one more each: one left for the loaded DGD (hi) to rise into
BUDGET = 9
# a standby takes the lease after seeing it unrenewed for LEASE_S (from its next try), then plans
# on its next tick; the rest is slack for two loaded cores
TAKEOVER_S = LEASE_S + 2 * RETRY_S + 2 * INTERVAL_S + 20
WINDOW_S, STEP_S = 120, 5


def _planner(stack: LiveStack, name: str, config: dict) -> launch.Process:
    workdir = stack.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "planner.yaml").write_text(yaml.safe_dump(config))
    (workdir / "token").write_text(TOKEN)
    return launch.planner(stack.kubeconfig, workdir / "planner.yaml", stack.prometheus.url, workdir / "planner.log",
                          static_token_file=workdir / "token", insecure_http=True,
                          extra=election_flags(stack.namespace))


def _url(p: launch.Process) -> str:
    return f"http://127.0.0.1:{p.ports['api']}"


def _leads(p: launch.Process) -> bool:
    return metric(_url(p), "dynamo_planner_leader") == 1


def _status(p: launch.Process, ns: str, name: str) -> dict:
    r = httpx.get(f"{_url(p)}/v1/deployments/{ns}/{name}/status", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _spec(kubectl, ns: str, name: str) -> dict:
    return kubectl.json("-n", ns, "get", "dynamoscalingpolicy", name)["spec"]


def test_fleet_pins_from_kubectl_and_rest_a_killed_leader_and_the_what_if_on_real_dynamo(
        cluster, kubectl, kube_api, namespace, tmp_path):
    ns = namespace
    with LiveStack(tmp_path / "stack", cluster.kubeconfig, kubectl, ns, scenario.STARTUP_DELAY_S) as stack:
        start_three_dgds(stack, kubectl, ns)
        url = wait_for(lambda: stack.frontend_url("hi"), what="hi's frontend")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=30, what="hi's model served")

        config = fleet_config(ns)
        config["fleet"]["gpu_budget"] = BUDGET
        first = _planner(stack, "a", config)
        second = _planner(stack, "b", config)
        watches = {}
        try:
            first.start(timeout_s=90)
            wait_for(lambda: _leads(first), timeout=TAKEOVER_S, what="the first planner leads")
            second.start(timeout_s=90)
            wait_for(lambda: [i["name"] for i in httpx.get(_url(second) + "/v1/deployments", headers=AUTH,
                                                             timeout=10).json()["items"]] == sorted(PRIORITY),
                     timeout=30, what="the standby lists the three DGDs")
            assert not _leads(second)

            # (1) a pin from kubectl on mid, one through the standby's REST API on lo
            pinned = policy("mid")
            pinned["spec"]["pins"] = [{"pool": "decode", "replicas": 2, "reason": "kubectl pin"}]
            kubectl.apply(pinned, ns)
            r = httpx.put(f"{_url(second)}/v1/deployments/{ns}/lo/overrides/decode", headers=AUTH,
                          json={"replicas": 2, "reason": "rest pin"}, timeout=10)
            assert r.status_code == 200, r.text
            pins = _spec(kubectl, ns, "lo").get("pins", [])
            assert [(p["pool"], p["replicas"], p["reason"]) for p in pins] == [("decode", 2, "rest pin")], pins
            def served(p) -> dict:
                overrides = {n: _status(p, ns, n)["overrides"].get("decode") or {} for n in ("mid", "lo")}
                return {n: (o.get("replicas"), o.get("reason")) for n, o in overrides.items()}

            for label, p in (("first", first), ("second", second)):  # every replica serves both pins
                # each pin reaches a replica through its own watch event: they may arrive in either order
                wait_for(lambda p=p: served(p) == {"mid": (2, "kubectl pin"), "lo": (2, "rest pin")}, timeout=30,
                         what=f"both pins served by the {label} planner")

            with Watch(kube_api, ns) as watch:
                wait_for(lambda: watch.spec("mid") == 3 and watch.spec("lo") == 3, timeout=60, interval=1,
                         what="both pins written by the leader")
                pinned_from = len(watch.samples)
                watches = {svc: SpecWatch(kube_api, ns, f"hi-{svc}") for svc in ("prefill", "decode")}

                # (2) load on hi, which rises into the one GPU left; then the leader dies without a word
                load = Load(url, rate=10, seconds=170)
                wait_for(lambda: watch.spec("hi") == 3, timeout=120, interval=1, what="hi scaled up to the budget")
                killed_at = len(watch.samples)
                held = {svc: len(w.seen()) for svc, w in watches.items()}
                first.kill()
                wait_for(lambda: _leads(second), timeout=TAKEOVER_S, what="the standby takes over")
                holder = kubectl.json("-n", ns, "get", "lease", "dynamo-scaling-planner")["spec"]["holderIdentity"]
                assert holder == _status(second, ns, "hi")["leader_election"]["identity"]
                # it plans: two rounds of the three DGDs decided by the new leader
                wait_for(lambda: metric(_url(second), "dynamo_planner_decisions_total") >= 6, timeout=30,
                         what="the new leader decides")
                assert _status(second, ns, "hi")["last_decision"] is not None
                wait_for(lambda: len(watch.samples) > killed_at + 4, timeout=10, what="observations after takeover")
                until = len(watch.samples)
                # the load still runs: what follows is judged under it, not after it ended
                assert load.result is None, "the load ended before the takeover was judged"

            samples = watch.samples[pinned_from:until]
            # the GPUs the adapters ask for stay within the budget at every observation
            over = [s[0] for s in watch.samples if sum(s[0].values()) > BUDGET]
            assert not over, over[:5]
            # the pins hold throughout, across the takeover (mid and lo are idle: their minimums plus the pin)
            assert {(s[0]["mid"], s[0]["lo"]) for s in samples} == {(3, 3)}, watch.events
            # hi keeps what it had when the leader died, or rises: nothing stepped back
            assert min(s[0]["hi"] for s in watch.samples[killed_at:until]) >= 3, watch.events
            for svc, w in watches.items():
                after = w.seen()[held[svc] - 1:]  # from its value when the leader died
                assert after == sorted(after), (svc, after)

            # (3) the new leader's what-if for hi answers what the command line replays of the same window
            r = httpx.post(f"{_url(second)}/v1/deployments/{ns}/hi/what-if", headers=AUTH, timeout=300,
                           json={"sla": {"ttft_ms": 150, "itl_ms": 50}, "window_s": WINDOW_S, "step_s": STEP_S})
            assert r.status_code == 200, r.text
            answer = r.json()
            current = answer["current"]["settings"]
            # the settings in effect are hi's policy's
            assert (current["ttft_ms"], current["itl_ms"]) == (300, 50), current
            assert current["pools"] == {"prefill": {"min": 1, "max": 3}, "decode": {"min": 1, "max": 3}}, current
            assert answer["requests"] > 0
            cli_config = {**config, "planner": {
                **config["planner"], "ttft_ms": current["ttft_ms"], "itl_ms": current["itl_ms"],
                "attainment_target": current["attainment_target"], "gpu_budget": current["gpu_budget"],
                "startup_s": current["startup_s"],
                **{f"{bound}_{pool}": current["pools"][pool][bound[:3]]
                   for pool in ("prefill", "decode") for bound in ("min", "max")}}}
            (tmp_path / "whatif.yaml").write_text(yaml.safe_dump(cli_config))
            out = tmp_path / "cli.json"
            proc = subprocess.run(
                [sys.executable, "-m", "dynamo_scaling.cli", "what-if", "--config", str(tmp_path / "whatif.yaml"),
                 "--prometheus-url", stack.prometheus.url, "--namespace", ns, "--dgd", "hi", "--window",
                 str(WINDOW_S), "--step", str(STEP_S), "--end", answer["window"]["end"], "--ttft-ms", "150",
                 "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert_same_what_if(answer, json.loads(out.read_text()))
            load.join()
        finally:
            for w in watches.values():
                w.stop()
            first.stop()
            second.stop()
