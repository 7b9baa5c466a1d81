"""The controller survives an API-server restart: watches resume and no update is lost."""

from __future__ import annotations

import pytest
from adapter_process import AdapterProcess
from helpers import wait_for

from devcluster import controlplane

pytestmark = pytest.mark.cluster
RECOVERY_S = 60  # the longest wait below


def test_api_server_restart(tmp_path, outage_plane, private_kubectl):
    state, plane, k = outage_plane, outage_plane.dir, private_kubectl
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
