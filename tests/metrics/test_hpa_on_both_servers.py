"""The HPA acts the same on this metrics server and on the real prometheus-adapter: with each in
turn owning the APIService `v1beta1.external.metrics.k8s.io`, the real HPA controller (in the
real kube-controller-manager) scales a DGDSA 1 -> 3 -> 1 on a queue depth the test drives
through a real Prometheus. prometheus-adapter is built from its Go module on first use
(devcluster/prometheus_adapter.py, cached after) with rules generated from our signal mapping."""

from __future__ import annotations

import json
import secrets

import pytest

from devcluster import apiservice, certs
from devcluster.apiservice import APISERVICE
from devcluster.kubectl import KubectlError
from devcluster.manifests import external_hpa
from devcluster.prometheus import Prometheus
from devcluster.prometheus_adapter import PrometheusAdapter, ensure_adapter
from helpers import wait_for
from support import Exporter, MetricsServerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

BASE = "/apis/external.metrics.k8s.io/v1beta1"
SERVERS = ("metrics-server", "prometheus-adapter")  # also the names of their Services
DGD, SERVICE = "llm", "decode"
SCRAPE_S, INTERVAL_S = 1.0, 1.0


def queue_series(namespace: str, queue: float) -> list[dict]:
    """A decode worker's queue with the `dgd`/`service` labels both servers read here (the
    adapter's rules are generated from the mapping's `dgd-labels` preset, and so is ours)."""
    return [{"name": "vllm:num_requests_waiting", "value": queue,
             "labels": {"namespace": namespace, "pod": f"{DGD}-{SERVICE}-0", "dgd": DGD, "service": SERVICE,
                        "dynamo_namespace": f"{namespace}-{DGD}", "model_name": "m"}}]


# which server answered a read: the adapter copies every result label, the namespace included,
# into metricLabels; this server keeps the namespace in the URL
def answered_by(body: dict) -> str | None:
    items = body.get("items") or []
    if not items:
        return None
    return "prometheus-adapter" if "namespace" in items[0].get("metricLabels", {}) else "metrics-server"


@pytest.fixture(scope="module")
def both(cluster, kubectl, tmp_path_factory):
    """Prometheus scraping one exporter, and both servers running on TLS ports behind
    ExternalName Services; the test points the APIService at one of them."""
    try:
        owner = kubectl.json("get", "apiservice", APISERVICE)
        pytest.fail(f"{APISERVICE} is owned by something else on this cluster: {owner['spec'].get('service')}")
    except KubectlError:
        pass
    work = tmp_path_factory.mktemp("hpa-both")
    adapter_bin = ensure_adapter()  # before anything starts: the first build takes minutes
    svc_ns = f"metrics-{secrets.token_hex(3)}"
    kubectl("create", "namespace", svc_ns)
    ca = certs.make_ca(work, "serving-ca", "metrics-serving-ca")
    serving = certs.issue(ca, work, "serving", "metrics", dns=(*(f"{s}.{svc_ns}.svc" for s in SERVERS), "localhost"),
                          ips=("127.0.0.1",), server=True)
    ns = f"t-{secrets.token_hex(4)}"
    kubectl("create", "namespace", ns)
    prom = Prometheus(work / "prometheus", scrape_interval_s=SCRAPE_S).start()
    exp = Exporter(work / "exp", queue_series(ns, 0))
    running: list = []
    try:
        prom.set_targets("decode", [(exp.address, {})])
        prom.wait_for_targets("decode", 1)
        wait_for(lambda: prom.query('vllm:num_requests_waiting{dgd!=""}'), what="first scrape")
        signals = work / "signals.yaml"
        signals.write_text("preset: dgd-labels\n")
        ours = MetricsServerProcess(
            work / "ours", prom.url, f"--interval={INTERVAL_S:g}", "--staleness=10", f"--signals-file={signals}",
            f"--kubeconfig={cluster.kubeconfig}", f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}", http=True, grpc=False)
        running.append(ours)
        # relisting every 2 s: the adapter serves only metrics it has discovered in Prometheus
        adapter = PrometheusAdapter(adapter_bin, work / "adapter", cluster.kubeconfig, prom.url,
                                    tls_cert=serving.cert, tls_key=serving.key, relist_interval="2s").start()
        running.append(adapter)
        yield {"namespace": ns, "exporter": exp, "ca": ca, "svc_ns": svc_ns,
               "ports": {"metrics-server": ours.secure_port, "prometheus-adapter": adapter.port}}
    finally:
        # the APIService goes first: an unavailable one can make namespace deletion hang
        kubectl.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        for n in (ns, svc_ns):
            kubectl.run("delete", "namespace", n, "--wait=false", check=False)
        for p in running:
            p.stop()
        exp.stop()
        prom.stop()


def read(kubectl, ns: str) -> dict | None:
    path = f"{BASE}/namespaces/{ns}/dynamo_queue_depth?labelSelector=dgd%3D{DGD}%2Cservice%3D{SERVICE}"
    r = kubectl.run("get", "--raw", path, check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def point_apiservice_at(kubectl, both: dict, server: str) -> None:
    port, svc_ns = both["ports"][server], both["svc_ns"]
    kubectl.apply(apiservice.manifests(svc_ns, server, port, both["ca"].cert))
    wait_for(lambda: answered_by(read(kubectl, both["namespace"]) or {}) == server, timeout=60, interval=0.5,
             what=f"reads through kube-apiserver answered by {server}")


@pytest.mark.parametrize("server", SERVERS)
def test_hpa_scales_a_dgdsa_1_to_3_to_1_on_queue_depth(both, kubectl, server):
    ns, exp = both["namespace"], both["exporter"]
    exp.set(queue_series(ns, 0))
    point_apiservice_at(kubectl, both, server)
    name = f"{DGD}-{SERVICE}"
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
                   "metadata": {"name": name}, "spec": {"replicas": 1, "dgdRef": {"name": DGD, "serviceName": SERVICE}}},
                  ns)
    # what the adapter controller reports: the HPA needs a selector on the scale subresource
    kubectl("-n", ns, "patch", "dgdsa", name, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"replicas": 1, "selector": f"nvidia.com/dynamo-graph-deployment-name={DGD}"}}))
    kubectl.apply(external_hpa("queue", name, "dynamo_queue_depth", "2", {"dgd": DGD, "service": SERVICE},
                               max_replicas=5, behavior={"scaleDown": {"stabilizationWindowSeconds": 0}}), ns)

    def replicas() -> int:
        return kubectl.json("-n", ns, "get", "dgdsa", name)["spec"]["replicas"]

    def hpa() -> dict:
        return kubectl.json("-n", ns, "get", "hpa", "queue")

    try:
        wait_for(lambda: any(c["type"] == "ScalingActive" and c["status"] == "True"
                             for c in hpa().get("status", {}).get("conditions", [])),
                 timeout=60, what=f"the HPA reading dynamo_queue_depth from {server}")
        assert replicas() == 1
        # queue 6 at 2 per replica: 3 replicas; queue 0: back to the minimum of 1
        for queue, want in ((6, 3), (0, 1)):
            exp.set(queue_series(ns, queue))
            wait_for(lambda: replicas() == want, timeout=60, interval=0.25,
                     what=f"DGDSA at {want} replicas with queue {queue} read from {server}")
            current = hpa()["status"]["currentMetrics"][0]["external"]
            assert current["metric"]["name"] == "dynamo_queue_depth"
            assert answered_by(read(kubectl, ns) or {}) == server  # nobody switched the APIService meanwhile
        assert hpa()["status"]["desiredReplicas"] == 1
    finally:
        kubectl.run("-n", ns, "delete", "hpa", "queue", "--ignore-not-found", check=False)
        kubectl.run("-n", ns, "delete", "dgdsa", name, "--ignore-not-found", check=False)
