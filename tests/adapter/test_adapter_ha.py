"""Two controller replicas with leader election, and an API-server outage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import wait_for

from devcluster.procs import free_port

pytestmark = pytest.mark.cluster
REPO_DGD = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
            "spec": {"services": {"decode": {"replicas": 1, "scalingAdapter": {"enabled": True}}}}}


def _replica(kubeconfig, namespace: str, log) -> tuple[subprocess.Popen, int]:
    health = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dynamo_scaling.cli", "adapter", "--namespace", namespace, "--kubeconfig", str(kubeconfig),
         "--health-port", str(health), "--metrics-port", str(free_port()), "--resync-period", "1",
         "--leader-election", "--leader-election-namespace", namespace, "--leader-election-lease", "adapter-leader"],
        stdout=log, stderr=subprocess.STDOUT)
    return proc, health


def test_only_the_leader_writes_and_a_standby_takes_over(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path):
    log = open(tmp_path / "replicas.log", "ab")
    a, _ = _replica(adapter_kubeconfig, namespace, log)
    wait_for(lambda: kubectl.run("-n", namespace, "get", "lease", "adapter-leader", check=False).returncode == 0,
             what="lease taken")
    b, _ = _replica(adapter_kubeconfig, namespace, log)
    try:
        holder = kubectl.json("-n", namespace, "get", "lease", "adapter-leader")["spec"]["holderIdentity"]
        assert holder.endswith(f"-{a.pid}")
        kubectl.apply(REPO_DGD, namespace)
        wait_for(lambda: kubectl.run("-n", namespace, "get", "dgdsa", "llama-decode", check=False).returncode == 0,
                 what="adapter created by the leader")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=3")
        wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama")["spec"]["services"]["decode"]["replicas"] == 3,
                 what="leader applies the scale")
        managers = {m["manager"] for m in kubectl.json("-n", namespace, "get", "dgd", "llama",
                                                       "--show-managed-fields")["metadata"]["managedFields"]}
        assert "dynamo-scaling-adapter" in managers
        a.kill()
        a.wait(10)
        # the standby takes the lease once it expires (15 s) and carries on
        wait_for(lambda: kubectl.json("-n", namespace, "get", "lease", "adapter-leader")["spec"]["holderIdentity"]
                 .endswith(f"-{b.pid}"), timeout=40, interval=1, what="standby becomes leader")
        kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=5")
        wait_for(lambda: kubectl.json("-n", namespace, "get", "dgd", "llama")["spec"]["services"]["decode"]["replicas"] == 5,
                 what="new leader applies the scale")
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.terminate()
                p.wait(15)
        log.close()
