"""Two controller replicas with leader election: only the leader writes, a standby takes over."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from adapter_process import holds_for
from helpers import wait_for

from devcluster import launch

pytestmark = pytest.mark.cluster
REPO_DGD = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"services": {"decode": {"replicas": 1, "scalingAdapter": {"enabled": True}}}}}
RESYNC_S = 1.0
# the elector's defaults (adapter/leader.py): a holder that stops renewing keeps the lease this
# long; it renews every RETRY_S
LEASE_S, RETRY_S = 15.0, 2.0
MANAGER = "dynamo-scaling-adapter/{}"


def _replica(kubeconfig, namespace: str, identity: str, log, *extra: str) -> tuple[subprocess.Popen, int]:
    # the launcher's command line, run as a bare process: these tests stop, kill and reap it themselves
    spec = launch.adapter(kubeconfig, namespace, Path(log.name), resync_period_s=RESYNC_S, extra=(
        "--leader-election", "--leader-election-namespace", namespace, "--leader-election-lease", "adapter-leader",
        "--identity", identity, *extra))
    proc = subprocess.Popen(spec.args, stdout=log, stderr=subprocess.STDOUT)
    return proc, spec.ports["health"]


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _managers(kubectl, namespace: str, *what: str) -> dict[str, list[dict]]:
    """Field managers of the named objects (or of every object of a kind), with their entries."""
    out: dict[str, list[dict]] = {}
    got = kubectl.json("-n", namespace, "get", *what, "--show-managed-fields")
    for obj in got.get("items", [got]):
        for mf in obj["metadata"].get("managedFields") or []:
            out.setdefault(mf["manager"], []).append(mf)
    return out


def _all_managers(kubectl, namespace: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for what in (("dgd", "llama"), ("dgdsa", "llama-decode"), ("events",)):
        for m, entries in _managers(kubectl, namespace, *what).items():
            found.setdefault(m, []).extend(entries)
    return found


def _decode_replicas_owner(kubectl, namespace: str) -> list[str]:
    """Managers that own the DGD's spec.services.decode.replicas."""
    return [m for m, entries in _managers(kubectl, namespace, "dgd", "llama").items()
            for e in entries if "f:replicas" in (e.get("fieldsV1") or {}).get("f:spec", {})
            .get("f:services", {}).get("f:decode", {})]


def _decode(kubectl, namespace: str) -> int:
    return kubectl.json("-n", namespace, "get", "dgd", "llama")["spec"]["services"]["decode"]["replicas"]


def _status_replicas(kubectl, namespace: str) -> int | None:
    return kubectl.json("-n", namespace, "get", "dgdsa", "llama-decode").get("status", {}).get("replicas")


def leader_scales_decode_to_3(kubectl, namespace: str) -> None:
    """The DGD goes in, the leader creates its decode adapter, and a scale to 3 is applied and reported."""
    kubectl.apply(REPO_DGD, namespace)
    wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llama-decode", check=False).returncode == 0,
             what="adapter created by the leader")
    kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=3")
    wait_for(lambda: _decode(kubectl, namespace) == 3 and _status_replicas(kubectl, namespace) == 3,
             what="leader applies the scale and reports it")


def test_only_the_leader_writes_and_a_standby_takes_over(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path):
    log = open(tmp_path / "replicas.log", "ab")
    a, _ = _replica(adapter_kubeconfig, namespace, "replica-a", log)
    wait_for(lambda: kubectl.run("-n", namespace, "get", "lease", "adapter-leader", check=False).returncode == 0,
             what="lease taken")
    b, b_health = _replica(adapter_kubeconfig, namespace, "replica-b", log)
    lead, standby = MANAGER.format("replica-a"), MANAGER.format("replica-b")
    try:
        assert kubectl.json("-n", namespace, "get", "lease", "adapter-leader")["spec"]["holderIdentity"] == "replica-a"
        wait_for(lambda: _ready(b_health), what="standby watching")  # so it sees every change below
        leader_scales_decode_to_3(kubectl, namespace)
        # a stalled leader keeps its lease until it expires: a change made now must wait for the
        # takeover, not be carried by the standby, which sees it and has several resyncs to act
        a.send_signal(signal.SIGSTOP)
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=4")
        margin = 3 * RESYNC_S
        assert margin < LEASE_S - RETRY_S  # the lease cannot expire within the margin
        holds_for(lambda: _decode(kubectl, namespace) == 3, margin, what="standby leaves the DGD alone")
        managers = _all_managers(kubectl, namespace)
        assert standby not in managers, f"the standby wrote: {managers[standby]}"
        assert lead in managers
        assert _decode_replicas_owner(kubectl, namespace) == [lead]
        assert any(e.get("subresource") == "status" for e in managers[lead])  # status, too, came from the leader

        a.kill()  # works on a stopped process
        a.wait(10)
        wait_for(lambda: kubectl.json("-n", namespace, "get", "lease", "adapter-leader")["spec"]["holderIdentity"]
                 == "replica-b", timeout=LEASE_S + 3 * RETRY_S, interval=1, what="standby becomes leader")
        wait_for(lambda: _decode(kubectl, namespace) == 4, timeout=10 * RESYNC_S,
                 what="new leader carries the change made during the stall")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=5")
        wait_for(lambda: _decode(kubectl, namespace) == 5 and _status_replicas(kubectl, namespace) == 5,
                 what="new leader applies the scale and reports it")
        assert _decode_replicas_owner(kubectl, namespace) == [standby]
        status_writers = [m for m, es in _managers(kubectl, namespace, "dgdsa", "llama-decode").items()
                          for e in es if e.get("subresource") == "status"]
        assert standby in status_writers
    finally:
        for p in (a, b):
            if p.poll() is None:
                if p is a:
                    os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                p.wait(15)
        log.close()
