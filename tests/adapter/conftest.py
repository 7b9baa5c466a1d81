"""Fixtures for the adapter tests that need its webhooks (tests/webhook_support.py)."""

from __future__ import annotations

import pytest
from adapter_process import AdapterProcess
from webhook_support import make_serving_cert, v1beta1_served, webhook_args

from devcluster.procs import free_port


@pytest.fixture()
def serving_cert(tmp_path):
    return make_serving_cert(tmp_path)


@pytest.fixture()
def webhook_port():
    return free_port()


@pytest.fixture()
def both_versions(kubectl, serving_cert, webhook_port):
    """Both CRDs serve v1beta1, converted by the adapter's webhook; restored afterwards so the
    rest of the session keeps the default (v1alpha1 only, no webhook)."""
    with v1beta1_served(kubectl, serving_cert[0], webhook_port):
        yield


@pytest.fixture()
def converting_adapter(cluster, kubectl, namespace, adapter_kubeconfig, tmp_path, both_versions, serving_cert,
                       webhook_port):
    proc = AdapterProcess(cluster, namespace, adapter_kubeconfig, tmp_path,
                          extra_args=webhook_args(webhook_port, serving_cert[1])).start()
    yield proc
    proc.stop()
    kubectl.run("delete", "clusterrole,clusterrolebinding", f"{namespace}-adapter", check=False)
