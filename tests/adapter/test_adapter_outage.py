"""The controller survives an API-server restart: watches resume and no update is lost."""

from __future__ import annotations

import pytest
from adapter_process import AdapterProcess
from helpers import wait_for

from devcluster import controlplane
from devcluster.kubectl import Kubectl

pytestmark = pytest.mark.cluster
RECOVERY_S = 60  # the longest wait below


def test_api_server_restart(tmp_path, repo_root):
    # a private plane: restarting the shared one would disturb every other test
    plane = tmp_path / "plane"
    state = controlplane.up(plane, hpa_sync_period_s=15)
    try:
        k = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
        k("apply", "-f", str(repo_root / "crds"))
        k("wait", "--for=condition=Established", "crd", "--all")
        k("create", "namespace", "outage")
        k.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llama"},
                 "spec": {"services": {"decode": {"replicas": 1, "scalingAdapter": {"enabled": True}}}}}, "outage")
        # no resync within the test: only a resumed watch can carry the scale into the DGD
        adapter = AdapterProcess(state, "outage", state.kubeconfig, tmp_path, resync_period=10 * RECOVERY_S).start()
        try:
            wait_for(lambda: k.run("-n", "outage", "get", "dgdsa", "llama-decode", check=False).returncode == 0,
                     what="adapter created")
            controlplane.restart_apiserver(plane)
            k("-n", "outage", "scale", "dgdsa", "llama-decode", "--replicas=4")
            wait_for(lambda: k.json("-n", "outage", "get", "dgd", "llama")["spec"]["services"]["decode"]["replicas"] == 4,
                     timeout=RECOVERY_S, interval=0.5, what="scale after the restart reaches the DGD")
            assert adapter.proc.poll() is None  # it kept running through the outage
        finally:
            adapter.stop()
    finally:
        controlplane.down(plane)
