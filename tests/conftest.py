"""Fixtures shared by every test: the real control plane, kubectl, namespaces, traces."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devcluster import launch

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `keda` run last: real KEDA then owns the cluster's external metrics APIService
    until the session ends, and every other test expects our own server there (or none)."""
    items.sort(key=lambda item: item.get_closest_marker("keda") is not None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    return REPO / "traces"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A control plane for the whole session, in a state dir of its own (so test sessions never
    share one), stopped at the end. With DYNAMO_SCALING_TEST_STATE set, a plane running there is
    reused and left running."""
    from devcluster import controlplane

    shared = os.environ.get("DYNAMO_SCALING_TEST_STATE")
    state_dir = Path(shared) if shared else tmp_path_factory.mktemp("plane") / "state"
    was_running = bool((st := controlplane.load_state(state_dir)) and controlplane.healthy(st))
    state = controlplane.up(state_dir, hpa_sync_period_s=float(os.environ.get("DYNAMO_SCALING_HPA_SYNC", "1")))
    yield state
    if not was_running and os.environ.get("DYNAMO_SCALING_KEEP_CLUSTER") != "1":
        controlplane.down(state_dir)


@pytest.fixture(scope="session")
def kubectl(cluster):
    from devcluster import controlplane
    from devcluster.kubectl import Kubectl

    k = Kubectl(controlplane.kubectl_path(), cluster.kubeconfig)
    k("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    k("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
    return k


@pytest.fixture(scope="session")
def kube_api(cluster):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture()
def namespace(kubectl) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture()
def standin(cluster, kubectl, namespace) -> Iterator[launch.Process]:
    """The stand-in Dynamo operator watching the test's namespace (pods Ready after 1 s)."""
    proc = launch.standin(cluster.kubeconfig, namespace, Path(cluster.state_dir) / "logs" / f"standin-{namespace}.log",
                          startup_delay_s=1).start()
    yield proc
    proc.stop(timeout=10)



# -- a control plane of a test's own, for tests that stop or restart its API server -----------
@pytest.fixture()
def private_cluster() -> Iterator[object]:
    """A control plane of its own (about 4 s to start), stopped and removed after the test."""
    from devcluster import build, controlplane

    state_dir = Path(build.cache_root()) / "devcluster" / f"private-{secrets.token_hex(3)}"
    state = controlplane.up(state_dir, hpa_sync_period_s=15)
    try:
        yield state
    finally:
        controlplane.down(state_dir)


@pytest.fixture()
def private_kubectl(private_cluster):
    from devcluster import controlplane
    from devcluster.kubectl import Kubectl

    return Kubectl(controlplane.kubectl_path(), private_cluster.kubeconfig)


@pytest.fixture()
def outage_plane(private_cluster, private_kubectl):
    """A private plane with the DGD/DGDSA CRDs established and a namespace `outage`: restarting
    or stopping the shared plane would disturb every other test."""
    private_kubectl("apply", "-f", str(REPO / "crds"))
    private_kubectl("wait", "--for=condition=Established", "crd", "--all")
    private_kubectl("create", "namespace", "outage")
    return private_cluster

# -- the adapter controller as a real process, under the chart's RBAC ------------------------
def rbac_for(namespace: str, sa: str) -> list[dict]:
    rules = yaml.safe_load((REPO / "adapter" / "rbac.yaml").read_text())["rules"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{namespace}-{sa}"},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{namespace}-{sa}"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{namespace}-{sa}"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]},
    ]


@pytest.fixture()
def adapter_kubeconfig(cluster, kubectl, namespace, tmp_path) -> Path:
    kubectl.apply(rbac_for(namespace, "adapter"))
    token = kubectl("-n", namespace, "create", "token", "adapter", "--duration=1h").strip()
    from devcluster.controlplane import write_kubeconfig

    return write_kubeconfig(cluster, tmp_path / "adapter.kubeconfig", user="adapter", token=token)


@pytest.fixture()
def adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path) -> Iterator:
    from adapter_process import AdapterProcess

    proc = AdapterProcess(cluster, namespace, adapter_kubeconfig, tmp_path).start()
    yield proc
    proc.stop()
    kubectl.run("delete", "clusterrole,clusterrolebinding", f"{namespace}-adapter", check=False)


@pytest.fixture()
def prometheus(tmp_path):
    """A fresh real Prometheus (1 s scrape interval) for one test."""
    from devcluster.prometheus import Prometheus

    with Prometheus(tmp_path / "prometheus", scrape_interval_s=1.0) as prom:
        yield prom
