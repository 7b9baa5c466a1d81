"""Fixtures for the chart tests: real helm (built from its Go module), rendering helpers, and a
private control plane for real installs (an install owns cluster-wide names such as the CRDs
and the external-metrics APIService, which must not disturb other tests on the shared one)."""

from __future__ import annotations

import secrets
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
