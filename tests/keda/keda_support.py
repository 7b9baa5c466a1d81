"""Support for the tests against real KEDA beside live Dynamo.

KEDA owns the external.metrics.k8s.io APIService, so our metrics server runs with its
APIService off and feeds KEDA through its own endpoints: the `/keda/` JSON endpoint on TLS
(bearer token) and the gRPC external scaler on mutual TLS. The live deployment: Prometheus, the
stand-in operator in dynamo mode (real frontend and mocker workers), our DGDSA adapter and our
metrics server. Tests apply the examples from examples/keda/ with only their addresses, names and time
constants made local (`localise`)."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import wait_for

from devcluster import certs, launch, scenario
from devcluster.loadgen import run_load, synthetic
from devcluster.manifests import disaggregated
from devcluster.procs import poll_until
from devcluster.stack import SIGNALS_FILE, Component, LiveStack

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "keda"
DGD = "llm"
# A burst decode pool beside the base one: both serve the same Dynamo endpoint, so the model
# stays served while the burst pool is at zero (what KEDA's scale-to-zero test needs).
BURST = "decode-burst"
# Scale-down windows of the examples are minutes; the tests shorten them to seconds.
FAST_SCALE_DOWN = {"stabilizationWindowSeconds": 5, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 5}]}


def services() -> dict:
    services = disaggregated()
    services[BURST] = {**services["decode"], "replicas": 0}
    return services


@dataclass
class LiveKeda:
    namespace: str
    stack: LiveStack
    frontend: str
    metrics_port: int
    grpc_port: int
    token: str
    created: list = field(default_factory=list)

    @property
    def kubectl(self):
        return self.stack.kubectl

    def replicas(self, pool: str) -> int:
        return scenario.replicas(self.kubectl, self.namespace, DGD, pool)

    def keda_read(self, metric: str, selector: str) -> httpx.Response:
        """Our /keda/ endpoint as KEDA's metrics-api trigger calls it."""
        return httpx.get(f"https://127.0.0.1:{self.metrics_port}/keda/v1/{self.namespace}/{metric}",
                         params={"selector": selector}, headers={"Authorization": f"Bearer {self.token}"},
                         verify=False, timeout=5)

    def load(self, rate_per_s: float = 12, duration_s: float = 35) -> threading.Thread:
        """A burst of long prompts through the frontend in the background (result in .result)."""
        t = threading.Thread(daemon=True, target=lambda: setattr(t, "result", asyncio.run(run_load(
            self.frontend, synthetic(rate_per_s=rate_per_s, duration_s=duration_s, input_length=4000,
                                     output_length=100)))))
        t.start()
        return t

    def peak_under_load(self, pool: str, **load) -> int:
        """The pool's highest replica count during a load burst (which must not fail a request)."""
        t, peak = self.load(**load), self.replicas(pool)
        while t.is_alive():
            peak = max(peak, self.replicas(pool))
            t.join(1)
        summary = t.result[0]
        print(f"load: {summary.line()}; peak {pool}: {peak}")
        assert summary.failed_unexplained == 0, summary.line()
        return peak

    def conditions(self, so: str) -> dict[str, str]:
        status = self.kubectl.json("-n", self.namespace, "get", "scaledobject", so).get("status", {})
        return {c["type"]: c["status"] for c in status.get("conditions", [])}

    def wait_replicas(self, pool: str, want: int, so: str, timeout: float = 120) -> None:
        """Wait for the pool's replicas; on timeout say what KEDA and its HPA saw."""
        try:
            poll_until(lambda: self.replicas(pool) == want, timeout, f"{pool} at {want}", 1.0)
        except TimeoutError:
            so_status = self.kubectl.json("-n", self.namespace, "get", "scaledobject", so).get("status", {})
            hpa = self.kubectl.run("-n", self.namespace, "get", "hpa", f"keda-hpa-{so}", "-o", "json", check=False)
            hpa_status = json.loads(hpa.stdout).get("status", {}) if hpa.returncode == 0 else hpa.stderr
            pytest.fail(f"{pool} not at {want} replicas after {timeout:.0f} s (at {self.replicas(pool)}); "
                        f"ScaledObject status {so_status}; HPA status {hpa_status}")

    def apply(self, docs: list[dict]) -> None:
        self.kubectl.apply(docs, self.namespace)
        self.created += [(d["kind"], d["metadata"]["name"]) for d in docs]

    def scaled_object_ready(self, name: str) -> dict:
        so = self.kubectl.json("-n", self.namespace, "get", "scaledobject", name)
        conds = {c["type"]: c for c in so.get("status", {}).get("conditions", [])}
        return so if conds.get("Ready", {}).get("status") == "True" else {}

    def cleanup(self, *pools: str) -> None:
        """Remove what a test applied (KEDA removes its HPA) and put its pools back to 1."""
        for kind, name in reversed(self.created):
            self.kubectl.run("-n", self.namespace, "delete", kind.lower(), name, "--ignore-not-found", check=False)
        self.created.clear()
        wait_for(lambda: not self.kubectl.json("-n", self.namespace, "get", "hpa")["items"], timeout=30,
                 what="KEDA's HPAs gone")
        for pool in pools:
            self.kubectl("-n", self.namespace, "scale", "dgdsa", f"{DGD}-{pool}", "--replicas=1")


def secret(name: str, data: dict[str, bytes], type_: str = "Opaque", annotations: dict | None = None) -> dict:
    meta = {"name": name, **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": type_,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def reader_rbac(sa: str) -> list[dict]:
    """What the metrics-api example's token needs: `get` on external.metrics.k8s.io here."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "keda-metrics-reader"},
         "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "keda-metrics-reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "keda-metrics-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": sa}]},
    ]


@dataclass(frozen=True)
class MetricsTLS:
    """Our metrics server's serving certificate, and the CA of the client certificate its gRPC
    port admits (the one handed to KEDA)."""

    serving_ca: certs.KeyPair
    serving: certs.KeyPair
    client_ca: certs.KeyPair
    keda_client: certs.KeyPair

    @classmethod
    def make(cls, d: Path) -> MetricsTLS:
        ca = certs.make_ca(d, "serving-ca", "metrics-serving-ca")
        serving = certs.issue(ca, d, "serving", "metrics", dns=("localhost",), ips=("127.0.0.1",), server=True)
        client_ca = certs.make_ca(d, "keda-client-ca", "keda-client-ca")
        return cls(ca, serving, client_ca, certs.issue(client_ca, d, "keda-client", "keda", client=True))


def start_metrics_server(stack: LiveStack, kubeconfig: Path, tls: MetricsTLS) -> tuple[Component, int, int]:
    """Our metrics server with its APIService off (KEDA owns it): /keda/ on TLS with token
    authentication, gRPC on mutual TLS."""
    comp = launch.metrics_server(stack.prometheus.url, stack.workdir / "logs" / "metrics-server.log",
                                 python=stack.python, extra=(
        "--grpc-tls", f"--grpc-client-ca-file={tls.client_ca.cert}",
        "--interval=2", "--staleness=15", f"--kubeconfig={kubeconfig}", "--authorization=subjectaccessreview",
        f"--tls-cert-file={tls.serving.cert}", f"--tls-private-key-file={tls.serving.key}",
        f"--signals-file={SIGNALS_FILE}"))  # the stack's DGD service names (decode, Frontend)
    stack.components["metrics-server"] = comp
    comp.start()
    secure, grpc_port = comp.ports["secure"], comp.ports["grpc"]
    return comp, secure, grpc_port


# -- the examples, made local ----------------------------------------------------------------
def localise(example: str, live: LiveKeda, pool: str, polling_s: int = 2) -> list[dict]:
    """examples/keda/<example> with what only a real cluster has replaced: Service addresses by
    the local ports, the example DGD (`llama-disagg` in `default`) by the test's, the target
    pool by `pool`, polling and scale-down windows by seconds. Triggers, targets, auth and
    fallback are the example's own."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / example).read_text()) if d]
    out = []
    for doc in copy.deepcopy(docs):
        if doc["kind"] == "ScaledObject":
            spec = doc["spec"]
            doc["metadata"]["name"] = f"{DGD}-{pool}"
            spec["scaleTargetRef"]["name"] = f"{DGD}-{pool}"
            spec["pollingInterval"] = polling_s
            hpa = spec.setdefault("advanced", {}).setdefault("horizontalPodAutoscalerConfig", {})
            hpa.setdefault("behavior", {})["scaleDown"] = FAST_SCALE_DOWN
            for trig in spec["triggers"]:
                meta = trig["metadata"]
                if "scalerAddress" in meta:
                    meta["scalerAddress"] = f"127.0.0.1:{live.grpc_port}"
                if "url" in meta:
                    meta["url"] = _local_url(meta["url"], live, pool)
                if "serverAddress" in meta:
                    meta["serverAddress"] = live.stack.prometheus.url
                if "query" in meta:
                    meta["query"] = (meta["query"].replace('namespace="default"', f'namespace="{live.namespace}"')
                                     .replace("llama-disagg-", f"{DGD}-"))
                if "dgd" in meta:
                    meta["dgd"], meta["service"] = DGD, pool
        out.append(doc)
    return out


def _local_url(url: str, live: LiveKeda, pool: str) -> str:
    u = urllib.parse.urlsplit(url)
    _, version, _, metric = u.path.strip("/").split("/")  # keda/v1/<namespace>/<metric>
    selector = dict(p.split("=") for p in urllib.parse.parse_qs(u.query)["selector"][0].split(","))
    selector.update(dgd=DGD, service=pool)
    query = urllib.parse.urlencode({"selector": ",".join(f"{k}={v}" for k, v in selector.items())})
    return f"https://127.0.0.1:{live.metrics_port}/keda/{version}/{live.namespace}/{metric}?{query}"
