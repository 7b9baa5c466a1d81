"""Fixtures for the chart tests: real helm (built from its Go module), rendering helpers, and a
private control plane for real installs (an install owns cluster-wide names such as the CRDs
and the external-metrics APIService, which must not disturb other tests on the shared one)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_chart_helpers import Renderer


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    from devcluster.helm import ensure_helm

    return ensure_helm()


@pytest.fixture(scope="session")
def helm(helm_bin, tmp_path_factory):
    """helm with no cluster (lint, template)."""
    from devcluster.helm import Helm

    return Helm(helm_bin, None, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def render(helm) -> Renderer:
    return Renderer(helm)


@pytest.fixture()
def private_cluster(tmp_path) -> Iterator[object]:
    """A control plane of its own (about 4 s to start), stopped and removed after the test."""
    from devcluster import build, controlplane

    state_dir = Path(build.cache_root()) / "devcluster" / f"helm-{secrets.token_hex(3)}"
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
def private_helm(helm_bin, private_cluster, tmp_path):
    from devcluster.helm import Helm

    return Helm(helm_bin, private_cluster.kubeconfig, tmp_path / "helm-home")


@pytest.fixture()
def dgd_namespace(kubectl):
    """A namespace for a DGD apart from the release's own."""
    ns = f"dgd-{secrets.token_hex(3)}"
    kubectl("create", "namespace", ns)
    yield ns
    kubectl.run("delete", "namespace", ns, "--wait=false", check=False)
