"""The metrics server (`dynamo-scaling metrics-server`) as a real process with a token of the
chart's metrics-server ServiceAccount, the chart's RBAC applied to the real API server: it reads
the front-proxy CA from kube-system/extension-apiserver-authentication, authorizes callers with
SubjectAccessReviews and serves external.metrics.k8s.io through the aggregation layer, with the
chart's own serving certificate and APIService. Permissions it does not need are refused."""

from __future__ import annotations

import base64
import importlib.util
import json
import ssl
from pathlib import Path

import httpx
import pytest

from devcluster.controlplane import write_kubeconfig
from devcluster.kubectl import KubectlError
from helm_chart_helpers import one
from helpers import wait_for

pytestmark = pytest.mark.cluster

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
APISERVICE = "v1beta1.external.metrics.k8s.io"
BASE = "/apis/external.metrics.k8s.io/v1beta1"


def _metrics_support():
    # loaded under its own name: a bare `support` on sys.path could be another directory's module
    path = Path(__file__).resolve().parents[1] / "metrics" / "support.py"
    spec = importlib.util.spec_from_file_location("metrics_test_support", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


support = _metrics_support()


@pytest.fixture()
def chart(render, kubectl, namespace):
    """The chart rendered for a release named after the test namespace, its RBAC applied."""
    docs = render.docs(release=namespace, namespace=namespace)
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    kubectl.apply(rbac)
    name = f"{namespace}-dynamo-scaling-metrics-server"
    yield {"ns": namespace, "docs": docs, "name": name, "sa": name,
           "user": f"system:serviceaccount:{namespace}:{name}"}
    for d in rbac:
        if d["kind"].startswith("Cluster") or d["metadata"].get("namespace") == "kube-system":
            ns = ["-n", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
            kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], *ns, "--wait=false", check=False)


def sa_kubeconfig(cluster, kubectl, ns: str, sa: str, path: Path) -> Path:
    token = kubectl("create", "token", sa, "-n", ns, "--duration=10m").strip()
    return write_kubeconfig(cluster, path, user=sa, token=token)


def chart_tls(docs: list[dict], name: str, workdir: Path) -> tuple[Path, Path, Path]:
    """The chart's generated serving certificate, written out as the pod would mount it."""
    data = one(docs, "Secret", f"{name}-tls")["data"]
    workdir.mkdir(parents=True, exist_ok=True)
    crt, key, ca = workdir / "tls.crt", workdir / "tls.key", workdir / "ca.crt"
    crt.write_bytes(base64.b64decode(data["tls.crt"]))
    ca.write_bytes(base64.b64decode(data["ca.crt"]))
    key.write_bytes(base64.b64decode(data["tls.key"]))
    key.chmod(0o600)
    return crt, key, ca


def start_server(kubeconfig: Path, prom_url: str, crt: Path, key: Path, workdir: Path):
    return support.MetricsServerProcess(
        workdir, prom_url, "--interval=1", "--staleness=4", "--prometheus-timeout=1",
        f"--kubeconfig={kubeconfig}", f"--tls-cert-file={crt}", f"--tls-private-key-file={key}")


def front_proxy_get(cluster, server, ca: Path, path: str, user: str,
                    groups: tuple[str, ...] = ()) -> httpx.Response:
    """A call on the TLS port as the aggregation layer makes it: front-proxy client certificate,
    user and groups in headers."""
    headers = [("X-Remote-User", user)] + [("X-Remote-Group", g) for g in groups]
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # the chart's certificate names the Service, not 127.0.0.1
    ctx.load_cert_chain(str(cluster.pki("front-proxy-client.crt")), str(cluster.pki("front-proxy-client.key")))
    with httpx.Client(verify=ctx, timeout=5) as c:
        return c.get(f"{server.https_url}{path}", headers=headers)


def condition(obj: dict, ctype: str) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def test_metrics_server_does_its_job_under_the_chart_service_account(
        cluster, kubectl, chart, prometheus, tmp_path):
    ns, name, docs = chart["ns"], chart["name"], chart["docs"]
    if kubectl.run("get", "apiservice", APISERVICE, check=False).returncode == 0:
        pytest.fail(f"{APISERVICE} is owned by something else on this cluster")
    kubeconfig = sa_kubeconfig(cluster, kubectl, ns, chart["sa"], tmp_path / "metrics-server.kubeconfig")
    crt, key, ca = chart_tls(docs, name, tmp_path / "tls")

    exp = support.Exporter(tmp_path / "exporter")
    server = None
    try:
        exp.set([{"name": "vllm:num_requests_waiting", "labels": {"model_name": "llama"}, "value": 5},
                 *support.dynamo_identity(ns, "llm", "prefill")])
        prometheus.set_targets("prefill", [(exp.address, {
            "namespace": ns, "pod": "llm-prefill-0", "component_type": "prefill"})])
        prometheus.wait_for_targets("prefill", 1)

        server = start_server(kubeconfig, prometheus.url, crt, key, tmp_path / "server")
        log = server.log_tail(20000)
        # it read the front-proxy CA with the ServiceAccount's token
        assert "cannot read the requestheader CA" not in log, log
        assert "no requestheader CA" not in log, log

        # the aggregation layer reaches it through the chart's APIService (caBundle from the
        # chart's generated CA); ExternalName `localhost` because there is no kubelet or pod IP
        kubectl.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                       "spec": {"type": "ExternalName", "externalName": "localhost",
                                "ports": [{"name": "https", "port": server.secure_port, "protocol": "TCP"}]}})
        apiservice = one(docs, "APIService", APISERVICE)
        apiservice["spec"]["service"]["port"] = server.secure_port
        kubectl.apply(apiservice)
        wait_for(lambda: condition(kubectl.json("get", "apiservice", APISERVICE), "Available").get("status") == "True",
                 timeout=60, interval=0.5, what="APIService Available")

        # kubectl (admin) -> kube-apiserver -> front-proxy certificate -> SubjectAccessReview
        # with the ServiceAccount's token -> the value from Prometheus
        path = f"{BASE}/namespaces/{ns}/dynamo_queue_depth?labelSelector=dgd%3Dllm%2Cservice%3Dprefill"
        errors: list[str] = []

        def read():
            r = kubectl.run("get", "--raw", path, check=False)
            if r.returncode == 0:
                return json.loads(r.stdout)
            errors[:] = [r.stderr.strip()]
            return None

        body = wait_for(read, timeout=30, what=f"external metric through kube-apiserver ({errors})")
        assert body["kind"] == "ExternalMetricValueList"
        assert [(i["metricName"], i["value"]) for i in body["items"]] == [("dynamo_queue_depth", "5")]
        assert "dynamo_queue_depth" in {r["name"] for r in json.loads(kubectl("get", "--raw", BASE))["resources"]}

        # its SubjectAccessReviews are answered, not failing: a user RBAC does not allow is
        # refused with the API server's reason, an allowed one is served
        denied = front_proxy_get(cluster, server, ca, path, f"system:serviceaccount:{ns}:nobody",
                                 ("system:serviceaccounts", "system:authenticated"))
        assert denied.status_code == 403, denied.text
        assert "may not get" in denied.json()["message"] and "authorization check failed" not in denied.text
        allowed = front_proxy_get(cluster, server, ca, path, "someone", ("system:masters", "system:authenticated"))
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["items"][0]["value"] == "5"
        assert "SubjectAccessReview failed" not in server.log_tail(20000)
        assert server.proc.poll() is None
    finally:
        # the APIService goes first: an unavailable one can make namespace deletion hang
        kubectl.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        if server:
            server.stop()
        exp.stop()


def test_metrics_server_gets_nothing_it_does_not_need(cluster, kubectl, chart, tmp_path):
    ns, user = chart["ns"], chart["user"]

    def can(verb: str, resource: str, where: str | None, *extra: str) -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={user}", *extra] + (["-n", where] if where else [])
        return kubectl.run(*args, check=False).stdout.strip() == "yes"

    needed = [("get", "configmaps/extension-apiserver-authentication", "kube-system"),
              ("create", "subjectaccessreviews.authorization.k8s.io", None)]
    not_needed = [("patch", "dynamographdeployments.nvidia.com", ns),
                  ("update", "dynamographdeployments.nvidia.com", "other-ns"),
                  ("update", "dynamographdeploymentscalingadapters.nvidia.com", ns, "--subresource=scale"),
                  ("patch", "dynamographdeploymentscalingadapters.nvidia.com", "other-ns"),
                  ("get", "secrets", ns), ("list", "secrets", "kube-system"),
                  ("update", "configmaps/extension-apiserver-authentication", "kube-system"),
                  ("get", "configmaps/other", "kube-system"), ("list", "configmaps", "kube-system"),
                  ("create", "pods", ns), ("list", "pods", "other-ns"), ("create", "events", ns),
                  ("update", "apiservices.apiregistration.k8s.io", None),
                  ("create", "clusterrolebindings.rbac.authorization.k8s.io", None)]
    wrong = [f"missing {c}" for c in needed if not can(*c)] + [f"granted {c}" for c in not_needed if can(*c)]
    assert not wrong, "\n".join(wrong)

    # and with the token the process runs with, not only by impersonation
    from devcluster.kubectl import Kubectl

    as_sa = Kubectl(kubectl.binary, sa_kubeconfig(cluster, kubectl, ns, chart["sa"], tmp_path / "sa.kubeconfig"))
    assert "requestheader-client-ca-file" in as_sa.json(
        "get", "configmap", "extension-apiserver-authentication", "-n", "kube-system")["data"]
    kubectl.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                   "metadata": {"name": "llm"}, "spec": {"services": {"decode": {"replicas": 1}}}}, ns)
    patch = '{"spec":{"services":{"decode":{"replicas":5}}}}'
    for args in (("get", "secrets", "-n", "kube-system"),
                 ("patch", "dgd", "llm", "-n", ns, "--type=merge", "-p", patch),
                 ("delete", "dgd", "llm", "-n", ns)):
        with pytest.raises(KubectlError) as exc:
            as_sa(*args)
        assert "Forbidden" in exc.value.stderr or "forbidden" in exc.value.stderr, exc.value.stderr
    assert kubectl.json("get", "dgd", "llm", "-n", ns)["spec"]["services"]["decode"]["replicas"] == 1


def test_without_the_chart_bindings_the_server_cannot_authenticate_callers(
        cluster, kubectl, namespace, render, prometheus, tmp_path):
    """The control: the same server under a ServiceAccount without the chart's bindings cannot
    read the front-proxy CA, so the API server's calls are refused; the rules above carry weight."""
    kubectl("create", "serviceaccount", "unbound", "-n", namespace)
    kubeconfig = sa_kubeconfig(cluster, kubectl, namespace, "unbound", tmp_path / "unbound.kubeconfig")
    docs = render.docs(release=namespace, namespace=namespace)
    crt, key, ca = chart_tls(docs, f"{namespace}-dynamo-scaling-metrics-server", tmp_path / "tls")
    server = start_server(kubeconfig, prometheus.url, crt, key, tmp_path / "server")
    try:
        assert "cannot read the requestheader CA" in server.log_tail(20000)
        r = front_proxy_get(cluster, server, ca, f"{BASE}/namespaces/{namespace}/dynamo_queue_depth",
                            "someone", ("system:masters",))
        assert r.status_code == 401, r.text
    finally:
        server.stop()
