"""Run the adapter controller as a real process under a ServiceAccount with exactly the rules
of adapter/rbac.yaml, watching the test's namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from adapter_process import AdapterProcess

from devcluster.controlplane import write_kubeconfig

REPO = Path(__file__).resolve().parents[2]


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
    return write_kubeconfig(cluster, tmp_path / "adapter.kubeconfig", user="adapter", token=token)


@pytest.fixture()
def adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path) -> Iterator[AdapterProcess]:
    proc = AdapterProcess(cluster, namespace, adapter_kubeconfig, tmp_path).start()
    yield proc
    proc.stop()
    kubectl.run("delete", "clusterrole,clusterrolebinding", f"{namespace}-adapter", check=False)
