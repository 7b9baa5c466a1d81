"""Real KEDA (operator + metrics API server from KEDA's Go module) beside live Dynamo.

`keda` starts KEDA once per session (its tests run last); it owns the external.metrics.k8s.io APIService, so our
metrics server runs with its APIService off and feeds KEDA through its own endpoints (see
keda_support). `keda_live` is one live deployment shared by every KEDA test; `live` hands it to
a test and removes what the test applied."""

from __future__ import annotations

import asyncio
import base64
import secrets

import httpx
import pytest
from helpers import wait_dgd_ready, wait_for
from keda_support import (
    BURST,
    DGD,
    LiveKeda,
    MetricsTLS,
    reader_rbac,
    secret,
    services,
    start_metrics_server,
)

from devcluster import scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.manifests import dgd
from devcluster.stack import LiveStack


@pytest.fixture(scope="session")
def metrics_tls(tmp_path_factory) -> MetricsTLS:
    return MetricsTLS.make(tmp_path_factory.mktemp("metrics-tls"))


# KEDA owns the session cluster's external metrics APIService from its first test to the end of
# the session, which is why tests/conftest.py runs the tests marked `keda` last
@pytest.fixture(scope="session")
def keda(cluster, kubectl, metrics_tls, tmp_path_factory):
    from devcluster.keda import Keda, built

    if not built():  # a cold build takes about 20 minutes on 2 cores: not inside a test run
        pytest.fail("KEDA is not built: run `python -m devcluster.keda` (or scripts/setup.sh --all) first")

    # KEDA's operator trusts our serving CA (its --ca-dir), as a cluster mounts it at /custom/ca
    with Keda(tmp_path_factory.mktemp("keda"), cluster.kubeconfig, kubectl,
              scaler_cas=(metrics_tls.serving_ca.cert,)) as k:
        k.start()
        yield k


@pytest.fixture(scope="session")
def keda_live(cluster, kubectl, keda, metrics_tls, tmp_path_factory):
    namespace = f"t-keda-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    work = tmp_path_factory.mktemp("keda-live")
    stack = LiveStack(work / "stack", cluster.kubeconfig, kubectl, namespace, scenario.STARTUP_DELAY_S)
    try:
        stack.start_prometheus()
        stack.start_standin()
        stack.start_adapter()
        _, secure, grpc_port = start_metrics_server(stack, cluster.kubeconfig, metrics_tls)
        serving_ca = metrics_tls.serving_ca.cert.read_bytes()
        # the Secrets the examples' TriggerAuthentications name
        kubectl.apply(reader_rbac("keda-reader") + [
            secret("dynamo-scaling-keda-token", {}, "kubernetes.io/service-account-token",
                    {"kubernetes.io/service-account.name": "keda-reader"}),
            secret("keda-dynamo-scaling-client", {"ca.crt": serving_ca,
                                                   "tls.crt": metrics_tls.keda_client.cert.read_bytes(),
                                                   "tls.key": metrics_tls.keda_client.key.read_bytes()}),
        ], namespace)
        token = wait_for(lambda: kubectl.json("-n", namespace, "get", "secret", "dynamo-scaling-keda-token")
                         .get("data", {}).get("token"), timeout=30, what="the ServiceAccount token Secret filled")
        blocks = f"--num-gpu-blocks-override {scenario.DECODE_BLOCKS}"
        kubectl.apply([dgd(DGD, services(), scenario.STARTUP_DELAY_S,
                           {f"devcluster.dynamo-scaling.io/args-{pool}": blocks for pool in ("decode", BURST)})],
                      namespace)
        wait_dgd_ready(kubectl, namespace, DGD, stack)
        url = wait_for(lambda: stack.frontend_url(DGD), what="frontend")
        wait_for(lambda: httpx.get(f"{url}/v1/models").json()["data"], timeout=60, what="model served")
        # the frontend's series get their DGD from the KV router's request counter, which exists
        # only once a request has been routed (docs/keda.md): serve a few first
        summary, _ = asyncio.run(run_load(url, synthetic(rate_per_s=2, duration_s=2, input_length=100, output_length=5)))
        assert summary.failed_unexplained == 0, summary.line()
        for pool in ("decode", "prefill", BURST):
            wait_for(lambda p=pool: kubectl.run("-n", namespace, "get", "dgdsa", f"{DGD}-{p}", check=False).returncode == 0,
                     what=f"adapter {DGD}-{pool}")
        live = LiveKeda(namespace, stack, url, secure, grpc_port, base64.b64decode(token).decode())
        wait_for(lambda: live.keda_read("dynamo_queue_depth", f"dgd={DGD},service=Frontend").status_code == 200,
                 timeout=40, what="the frontend's queue served")
        yield live
    finally:
        kubectl.run("-n", namespace, "delete", "scaledobjects,triggerauthentications", "--all", check=False)
        stack.close()
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture()
def live(keda_live):
    yield keda_live
    keda_live.cleanup("decode", "prefill")


