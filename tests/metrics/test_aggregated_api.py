"""Through the real control plane: the API server's aggregation layer calls the metrics server
over TLS with its front-proxy client certificate (APIService v1beta1.external.metrics.k8s.io ->
ExternalName Service `localhost`), and the real HPA controller scales a DGDSA on
dynamo_queue_depth: exporter -> Prometheus -> metrics server -> HPA -> DGDSA -> adapter -> DGD -> pods."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devcluster import apiservice, certs
from devcluster.apiservice import APISERVICE
from devcluster.kubectl import KubectlError
from devcluster.manifests import external_hpa
from devcluster.procs import free_port
from devcluster.prometheus import Prometheus
from helpers import wait_for
from support import Exporter, MetricsServerProcess, dynamo_identity

pytestmark = pytest.mark.cluster

BASE = "/apis/external.metrics.k8s.io/v1beta1"


def condition(obj: dict, ctype: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


@pytest.fixture(scope="module")
def aggregated(cluster, kubectl, tmp_path_factory):
    """Prometheus, one exporter, the metrics server on a TLS port, and the APIService routing
    external.metrics.k8s.io to it. Yields (prometheus, exporter, server)."""
    work = tmp_path_factory.mktemp("aggregated")
    try:
        existing = kubectl.json("get", "apiservice", APISERVICE)
        pytest.fail(f"{APISERVICE} is owned by something else on this cluster: {existing['spec'].get('service')}")
    except KubectlError:
        pass
    svc_ns = f"metrics-{secrets.token_hex(3)}"
    kubectl("create", "namespace", svc_ns)
    ca = certs.make_ca(work, "serving-ca", "metrics-serving-ca")
    serving = certs.issue(ca, work, "serving", "metrics", dns=(f"metrics.{svc_ns}.svc", "localhost"),
                          ips=("127.0.0.1",), server=True)
    prom = Prometheus(work / "prometheus").start()
    exp = Exporter(work / "exp")
    server = None
    try:
        server_port = free_port()
        server = MetricsServerProcess(
            work / "server", prom.url, "--interval=1", "--staleness=4", "--prometheus-timeout=1",
            f"--kubeconfig={cluster.kubeconfig}", f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}", http=True, grpc=False)
        server_port = server.secure_port
        kubectl.apply(apiservice.manifests(svc_ns, "metrics", server_port, ca.cert))
        wait_for(lambda: condition(kubectl.json("get", "apiservice", APISERVICE), "Available").get("status") == "True",
                 timeout=60, interval=0.5, what="APIService Available")
        yield prom, exp, server
    finally:
        # the APIService goes first: an unavailable one can make namespace deletion hang
        kubectl.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        kubectl.run("delete", "namespace", svc_ns, "--wait=false", check=False)
        if server:
            server.stop()
        exp.stop()
        prom.stop()


def _publish(prom: Prometheus, exp: Exporter, namespace: str, queue: float) -> None:
    exp.set([{"name": "vllm:num_requests_waiting", "labels": {"model_name": "llama"}, "value": queue},
             *dynamo_identity(namespace, "llm", "prefill")])
    prom.set_targets(f"prefill-{namespace}", [(exp.address, {
        "namespace": namespace, "pod": "llm-prefill-0", "component_type": "prefill"})])


def test_kubectl_reads_the_value_through_the_aggregation_layer(aggregated, kubectl, namespace):
    prom, exp, server = aggregated
    _publish(prom, exp, namespace, 5)
    prom.wait_for_targets(f"prefill-{namespace}", 1)
    path = f"{BASE}/namespaces/{namespace}/dynamo_queue_depth?labelSelector=dgd%3Dllm%2Cservice%3Dprefill"

    last_error = []

    def read():
        r = kubectl.run("get", "--raw", path, check=False)
        if r.returncode == 0:
            return json.loads(r.stdout)
        last_error[:] = [r.stderr.strip()]
        return None

    body = wait_for(read, timeout=30, what=f"value through kube-apiserver ({last_error})")
    assert body["kind"] == "ExternalMetricValueList"
    item = body["items"][0]
    assert item["value"] == "5" and item["metricName"] == "dynamo_queue_depth"
    assert item["metricLabels"] == {"dgd": "llm", "service": "prefill", "model": "llama",
                                    "dynamo_namespace": f"{namespace}-llm".replace("-", "_")}
    discovery = json.loads(kubectl("get", "--raw", BASE))
    assert "dynamo_queue_depth" in {r["name"] for r in discovery["resources"]}
    assert "external.metrics.k8s.io" in kubectl("get", "--raw", "/apis")  # api-versions may answer from its cache
    # errors come back as metav1.Status through the API server
    missing = kubectl.run("get", "--raw", f"{BASE}/namespaces/{namespace}/no_such_metric", check=False)
    assert missing.returncode != 0 and "not served here" in missing.stderr, missing.stderr
    # the API server is the only caller that gets in: the TLS port itself refuses anonymous calls
    import httpx
    r = httpx.get(f"{server.https_url}{path}", verify=False, timeout=5)
    assert r.status_code == 401


def test_hpa_scales_a_dgdsa_on_queue_depth_and_holds_when_metrics_fail(
        aggregated, cluster, kubectl, namespace, standin, adapter):
    prom, exp, server = aggregated
    _publish(prom, exp, namespace, 0)
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "llm"},
                   "spec": {"services": {
                       "Frontend": {"componentType": "frontend", "replicas": 1},
                       "prefill": {"componentType": "worker", "subComponentType": "prefill", "replicas": 1,
                                   "scalingAdapter": {"enabled": True}}}}}, namespace)
    wait_for(lambda: kubectl.json("-n", namespace, "get", "dgdsa", "llm-prefill").get("status", {}).get("selector")
             if kubectl.run("-n", namespace, "get", "dgdsa", "llm-prefill", check=False).returncode == 0 else None,
             timeout=60, what="adapter with a selector")
    kubectl.apply(external_hpa("prefill", "llm-prefill", "dynamo_queue_depth", "2", {"dgd": "llm", "service": "prefill"},
                               max_replicas=5, behavior={"scaleDown": {"stabilizationWindowSeconds": 0}}), namespace)

    def hpa() -> dict:
        return kubectl.json("-n", namespace, "get", "hpa", "prefill")

    def failed_reads() -> int:
        # reads the metrics server answered 503 (the HPA's, through the aggregation layer)
        text = httpx.get(f"{server.http_url}/metrics", timeout=5).text
        return int(sum(sample.value for family in text_string_to_metric_families(text)
                       for sample in family.samples
                       if sample.name == "dynamo_metrics_server_request_duration_seconds_count"
                       and sample.labels.get("code") == "503"))

    def dgd_replicas() -> int:
        return kubectl.json("-n", namespace, "get", "dgd", "llm")["spec"]["services"]["prefill"].get("replicas", 1)

    wait_for(lambda: condition(hpa(), "ScalingActive").get("status") == "True", timeout=120, interval=1,
             what="HPA reading the external metric")
    # queue 6 with 2 per replica -> 3 replicas, carried into the DGD by the adapter
    _publish(prom, exp, namespace, 6)
    wait_for(lambda: dgd_replicas() == 3, timeout=90, interval=1, what="DGD prefill scaled to 3")
    # the HPA reports the queue per replica once it runs 3
    wait_for(lambda: hpa()["status"].get("currentMetrics", [{}])[0].get("external", {}).get("current", {})
             .get("averageValue") == "2", timeout=30, interval=1, what="averageValue 2")
    wait_for(lambda: len(kubectl.json("-n", namespace, "get", "pods", "-l",
                                      "nvidia.com/dynamo-graph-deployment-name=llm,nvidia.com/dynamo-component=prefill")
                         ["items"]) == 3, timeout=60, what="3 prefill pods")

    # Prometheus down: the server answers 503, the HPA keeps the replicas and says why
    prom.stop()
    try:
        h = wait_for(lambda: (h := hpa()) and condition(h, "ScalingActive").get("status") == "False" and h,
                     timeout=60, interval=1, what="ScalingActive=False")
        assert condition(h, "ScalingActive")["reason"] == "FailedGetExternalMetric"
        # two more HPA syncs, each failing to read the metric, must leave the replicas alone
        seen = failed_reads()
        wait_for(lambda: failed_reads() >= seen + 2, timeout=30 * cluster.hpa_sync_period_s, interval=0.5,
                 what="two more HPA syncs without the metric")
        assert dgd_replicas() == 3
        assert kubectl.json("-n", namespace, "get", "dgdsa", "llm-prefill")["spec"]["replicas"] == 3
    finally:
        prom.start()
    # back: the queue drains -> down to 1 again
    _publish(prom, exp, namespace, 0)
    wait_for(lambda: dgd_replicas() == 1, timeout=90, interval=1, what="DGD prefill back to 1")
    assert condition(hpa(), "ScalingActive").get("status") == "True"
    kubectl("-n", namespace, "delete", "hpa", "prefill")


