"""The chart rendered and linted by real helm, without a cluster: structure, security settings,
both install modes, TLS, CRDs identical to crds/, and values.schema.json."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from cryptography import x509

from helm_chart_helpers import CHART, DATA, REPO, find, one

FULL = DATA / "values-full.yaml"
STANDALONE = REPO / "examples" / "helm" / "values-standalone.yaml"
OPERATOR = REPO / "examples" / "helm" / "values-dynamo-operator.yaml"
DEPLOYMENT_KINDS = ("Deployment",)


@pytest.mark.parametrize("values", [None, FULL, STANDALONE, OPERATOR], ids=["default", "full", "standalone", "operator"])
def test_lint_strict(helm, values):
    args = ["lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    out = helm(*args)
    assert "0 chart(s) failed" in out


def test_default_render_standalone(render):
    docs = render.docs()
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount", "ClusterRole",
            "ClusterRoleBinding", "RoleBinding", "Role", "APIService", "Secret", "ConfigMap",
            "PodDisruptionBudget"} <= kinds
    assert {d["metadata"]["name"] for d in find(docs, "Deployment")} == {"ds-dynamo-scaling-adapter",
                                                                          "ds-dynamo-scaling-metrics-server"}
    # the planner needs a target, so it is off by default
    assert not any("planner" in d["metadata"]["name"] for d in docs if d["kind"] != "ClusterRole")
    for crd in find(docs, "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_every_container_is_restricted_with_probes_and_resources(render):
    docs = render.docs(values=[FULL])
    deployments = find(docs, "Deployment")
    assert len(deployments) == 3
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["serviceAccountName"]
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] in ("/readyz", "/healthz")
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            probe_port = c["readinessProbe"]["httpGet"]["port"]
            assert probe_port in ports, f"{dep['metadata']['name']}: probe on a port the container does not declare"
            assert c["image"] == "registry.example.com/dynamo-scaling:0.1.0"


def test_adapter_health_ports_leader_election_and_pdb(render):
    docs = render.docs(values=[FULL])
    dep = one(docs, "Deployment", "ds-dynamo-scaling-adapter")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "health": 8081, "webhook": 9443}
    assert c["livenessProbe"]["httpGet"]["port"] == "health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["args"][2] == "adapter" and "--all-namespaces" in c["args"]
    assert "--leader-election" in c["args"]
    assert "--leader-election-lease=dynamo-scaling-adapter-leader" in c["args"]
    pdb = one(docs, "PodDisruptionBudget", "ds-dynamo-scaling-adapter")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    lease_role = one(docs, "Role", "ds-dynamo-scaling-adapter-leader-election")
    assert {"resourceNames": ["dynamo-scaling-adapter-leader"]}.items() <= lease_role["rules"][1].items()


def test_several_adapters_without_leader_election_are_refused(render):
    proc = render.run(sets={"adapter.replicas": "2", "adapter.leaderElection.enabled": "false"}, check=False)
    assert proc.returncode != 0
    assert "needs adapter.leaderElection.enabled=true" in proc.stderr


def test_watch_namespaces_gives_rolebindings_not_cluster_binding(render):
    docs = render.docs(sets={"adapter.watchNamespaces": "{team-a,team-b}"})
    bindings = find(docs, "RoleBinding", "ds-dynamo-scaling-adapter")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert not find(docs, "ClusterRoleBinding", "ds-dynamo-scaling-adapter")
    c = one(docs, "Deployment", "ds-dynamo-scaling-adapter")["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=team-a" in c["args"] and "--all-namespaces" not in c["args"]
    discovery = one(docs, "ClusterRole", "ds-dynamo-scaling-adapter-discovery")
    assert all("namespaces" not in r["resources"] for r in discovery["rules"])


def test_operator_mode_installs_no_crds_no_adapter_and_names_the_exempt_planner(render):
    docs = render.docs(values=[OPERATOR])
    assert not find(docs, "CustomResourceDefinition")
    assert not [d for d in docs if "adapter" in d["metadata"]["name"]]
    sa = one(docs, "ServiceAccount", "planner-serviceaccount")
    dep = one(docs, "Deployment", "ds-dynamo-scaling-planner")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    for b in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding"):
        if "planner" in b["metadata"]["name"]:
            assert b["subjects"] == [{"kind": "ServiceAccount", "name": "planner-serviceaccount",
                                      "namespace": "dynamo-scaling"}]
    # an existing ServiceAccount (made by Dynamo's own chart) can be used instead
    docs = render.docs(values=[OPERATOR], sets={"planner.serviceAccount.create": "false"})
    assert not find(docs, "ServiceAccount", "planner-serviceaccount")


def test_apiservice_tls_generated_verifies_and_is_never_insecure_by_default(render):
    docs = render.docs()
    api = one(docs, "APIService", "v1beta1.external.metrics.k8s.io")
    assert "insecureSkipTLSVerify" not in api["spec"]
    assert api["spec"]["service"] == {"name": "ds-dynamo-scaling-metrics-server", "namespace": "dynamo-scaling", "port": 443}
    secret = one(docs, "Secret", "ds-dynamo-scaling-metrics-server-tls")
    ca = x509.load_pem_x509_certificate(base64.b64decode(api["spec"]["caBundle"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert base64.b64decode(secret["data"]["ca.crt"]) == base64.b64decode(api["spec"]["caBundle"])
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "ds-dynamo-scaling-metrics-server.dynamo-scaling.svc" in sans  # the aggregator's TLS ServerName
    dep = one(docs, "Deployment", "ds-dynamo-scaling-metrics-server")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["tls"]["secret"]["secretName"] == secret["metadata"]["name"]
    # the auth wiring of an aggregated API server
    reader = one(docs, "RoleBinding", "ds-dynamo-scaling-metrics-server-auth-reader")
    assert reader["metadata"]["namespace"] == "kube-system"
    assert reader["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": "extension-apiserver-authentication-reader"}
    delegator = one(docs, "ClusterRoleBinding", "ds-dynamo-scaling-metrics-server-auth-delegator")
    assert delegator["roleRef"]["name"] == "system:auth-delegator"


def test_tls_cert_manager_and_provided_secret(render):
    docs = render.docs(sets={"metricsServer.tls.mode": "certManager"})
    api = one(docs, "APIService")
    assert api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "dynamo-scaling/ds-dynamo-scaling-metrics-server-tls"
    cert = one(docs, "Certificate", "ds-dynamo-scaling-metrics-server-tls")
    assert "ds-dynamo-scaling-metrics-server.dynamo-scaling.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"]["name"] == "ds-dynamo-scaling-metrics-server-ca"
    assert not [s for s in find(docs, "Secret") if "metrics-server" in s["metadata"]["name"]]
    # provided secret: the CA must be given, with a message that says so
    proc = render.run(sets={"metricsServer.tls.mode": "secret", "metricsServer.tls.secretName": "my-tls"}, check=False)
    assert proc.returncode != 0 and "metricsServer.tls.caBundle" in proc.stderr
    docs = render.docs(sets={"metricsServer.tls.mode": "secret", "metricsServer.tls.secretName": "my-tls",
                             "metricsServer.tls.caBundle": "Q0E="})
    assert one(docs, "APIService")["spec"]["caBundle"] == "Q0E="
    dep = one(docs, "Deployment", "ds-dynamo-scaling-metrics-server")
    assert {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}["tls"]["secret"]["secretName"] == "my-tls"


def test_keda_owns_the_apiservice_switch(render):
    docs = render.docs(sets={"metricsServer.apiService.enabled": "false"})
    assert not find(docs, "APIService")
    assert not [d for d in docs if "hpa-external-metrics" in d["metadata"]["name"]]
    svc = one(docs, "Service", "ds-dynamo-scaling-metrics-server")
    assert {p["name"] for p in svc["spec"]["ports"]} == {"https", "http"}  # gRPC is opt-in


def test_grpc_serves_only_callers_with_client_certificates(render):
    args = lambda docs: one(docs, "Deployment", "ds-dynamo-scaling-metrics-server")[  # noqa: E731
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--grpc-port=0" in args(render.docs())
    docs = render.docs(sets={"metricsServer.grpcPort": "6000", "metricsServer.grpcClientCASecret": "keda-ca"})
    assert {"--grpc-port=6000", "--grpc-tls", "--grpc-client-ca-file=/etc/dynamo-scaling/grpc-client-ca/ca.crt"} \
        <= set(args(docs))
    pod = one(docs, "Deployment", "ds-dynamo-scaling-metrics-server")["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["grpc-client-ca"]["secret"]["secretName"] == "keda-ca"
    proc = render.run(sets={"metricsServer.grpcPort": "6000"}, check=False)
    assert proc.returncode != 0 and "metricsServer.grpcClientCASecret" in proc.stderr, proc.stderr
    assert "--grpc-insecure" in args(render.docs(sets={"metricsServer.grpcPort": "6000",
                                                       "metricsServer.grpcInsecure": "true"}))


def test_optional_servicemonitor_and_default_networkpolicy(render):
    docs = render.docs()
    assert not find(docs, "ServiceMonitor")
    # on by default: each component admits only its own ports
    ms = one(docs, "NetworkPolicy", "ds-dynamo-scaling-metrics-server")["spec"]["ingress"]
    assert ms == [{"ports": [{"port": 6443, "protocol": "TCP"}]}, {"ports": [{"port": 8080, "protocol": "TCP"}]}]
    assert not find(render.docs(sets={"networkPolicy.enabled": "false"}), "NetworkPolicy")
    docs = render.docs(values=[FULL])
    assert len(find(docs, "ServiceMonitor")) == 3
    nps = {d["metadata"]["name"]: d for d in find(docs, "NetworkPolicy")}
    assert set(nps) == {"ds-dynamo-scaling-adapter", "ds-dynamo-scaling-metrics-server", "ds-dynamo-scaling-planner"}
    ms = nps["ds-dynamo-scaling-metrics-server"]["spec"]["ingress"]
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    keda = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    assert ms[0] == {"ports": [{"port": 6443, "protocol": "TCP"}]}
    # /metrics for the monitoring peers only; gRPC for KEDA only
    assert ms[1] == {"ports": [{"port": 8080, "protocol": "TCP"}], "from": [monitoring]}
    assert ms[2] == {"ports": [{"port": 6000, "protocol": "TCP"}], "from": [keda]}
    opened = one(render.docs(values=[FULL], sets={"metricsServer.httpServesApi": "true"}), "NetworkPolicy",
                 "ds-dynamo-scaling-metrics-server")["spec"]["ingress"]
    assert opened[1]["from"] == [monitoring, keda]


def test_planner_config_is_rendered_from_values(render):
    from scaler.planner.config import PlannerConfig
    from scaler.profile import PerformanceProfile

    docs = render.docs(values=[FULL])
    cm = one(docs, "ConfigMap", "ds-dynamo-scaling-planner-config")
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    assert cfg["deployment"] == {"name": "llama-disagg", "namespace": "dynamo-scaling",
                                 "prefill_service": "prefill", "decode_service": "decode"}
    assert cfg["state_configmap"] == "ds-dynamo-scaling-planner-state"
    PlannerConfig.model_validate(cfg["planner"])
    PerformanceProfile.from_dict(json.loads(cm["data"]["profile.json"]))
    example = yaml.safe_load((REPO / "examples" / "planner" / "planner-config.yaml").read_text())
    assert set(cfg) == set(example), "the chart and the example planner config have the same shape"
    dep = one(docs, "Deployment", "ds-dynamo-scaling-planner")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--advisory" in args and "--api-port=8085" in args
    proc = render.run(sets={"planner.enabled": "true"}, check=False)
    assert proc.returncode != 0 and "planner.deployment.name" in proc.stderr
    # the frontend service and a DynamoGraphDeploymentRequest for the SLA pass through, and the
    # rendered file is a config the planner accepts
    from scaler.service.config import ServiceConfig

    docs = render.docs(values=[FULL], sets={"planner.deployment.frontendService": "Frontend",
                                            "planner.deployment.request": "llama-disagg-request"})
    cfg = yaml.safe_load(one(docs, "ConfigMap", "ds-dynamo-scaling-planner-config")["data"]["config.yaml"])
    assert cfg["deployment"]["frontend_service"] == "Frontend"
    assert cfg["deployment"]["request"] == "llama-disagg-request"
    ServiceConfig.model_validate(cfg)


def test_crds_are_the_repository_crds(render):
    """crds/ is the one source of truth: the chart's copy is byte-identical (helm/sync-crds.sh)
    and the rendered CRDs differ only by the chart's labels and keep annotation."""
    source = sorted((REPO / "crds").glob("*.yaml"))
    copies = sorted((CHART / "files" / "crds").glob("*.yaml"))
    assert [p.name for p in source] == [p.name for p in copies], "run helm/sync-crds.sh"
    for a, b in zip(source, copies):
        assert a.read_bytes() == b.read_bytes(), f"{b} differs from {a}: run helm/sync-crds.sh"
    # as shipped: with the adapter's webhooks on, the chart adds conversion (tests/helm/test_helm_adapter_webhook.py)
    docs = render.docs(sets={"adapter.webhook.enabled": "false"})
    rendered = {d["metadata"]["name"]: d for d in find(docs, "CustomResourceDefinition")}
    for path in source:
        want = yaml.safe_load(path.read_text())
        got = rendered[want["metadata"]["name"]]
        got["metadata"].pop("labels")
        got["metadata"].pop("annotations")
        assert got == want


SCHEMA_CASES = [
    ({"adapter.replicas": "two"}, "/adapter/replicas", "want integer"),
    ({"adapter.replica": "3"}, "/adapter", "additional properties 'replica' not allowed"),
    ({"metricsServer.tls.mode": "selfsigned"}, "/metricsServer/tls/mode", "value must be one of"),
    ({"metricsServer.securePort": "70000"}, "/metricsServer/securePort", "maximum"),
    ({"planner.settings.ttft": "500"}, "/planner/settings", "additional properties 'ttft' not allowed"),
    ({"prometheus.url": "prometheus:9090"}, "/prometheus/url", "does not match pattern"),
    ({"crds.install": "maybe"}, "/crds/install", "want boolean"),
]


@pytest.mark.parametrize("sets,where,message", SCHEMA_CASES, ids=[next(iter(c[0])) for c in SCHEMA_CASES])
def test_schema_rejects_wrong_values_clearly(render, sets, where, message):
    proc = render.run(sets=sets, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert f"at '{where}'" in proc.stderr and message in proc.stderr, proc.stderr


def _schema_paths(node: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if sub.get("type") == "object" and sub.get("additionalProperties") is False:
            out |= _schema_paths(sub, path)
    return out


def _value_paths(node: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, sub in node.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if isinstance(sub, dict):
            out |= _value_paths(sub, path)
    return out


def test_schema_and_values_yaml_cover_the_same_keys():
    """Every field of the schema has a documented default in values.yaml, and helm lint already
    proves values.yaml passes the schema."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # planner.settings lists only what differs from the planner's own defaults (PlannerConfig)
    missing = {p for p in _schema_paths(schema)
               if p not in _value_paths(values) and not p.startswith("planner.settings.")}
    assert not missing, f"in values.schema.json but not in values.yaml: {sorted(missing)}"
    text = (CHART / "values.yaml").read_text().splitlines()
    top_level = [i for i, line in enumerate(text) if line and not line.startswith((" ", "#"))]
    for i in top_level:
        assert text[i - 1].lstrip().startswith("#"), f"values.yaml: {text[i]!r} has no comment"


def test_planner_settings_schema_matches_the_planner_model():
    from scaler.planner.config import PlannerConfig

    schema = json.loads((CHART / "values.schema.json").read_text())
    props = set(schema["properties"]["planner"]["properties"]["settings"]["properties"])
    assert props == set(PlannerConfig.model_fields), "values.schema.json planner.settings drifted from PlannerConfig"


def test_adapter_rbac_matches_the_adapter_package(render):
    """The adapter ships its least-privilege rules as adapter/rbac.yaml; the chart grants the same."""
    path = REPO / "adapter" / "rbac.yaml"

    def norm(rules):
        out = set()
        for r in rules:
            for g in r.get("apiGroups", [""]):
                for res in r.get("resources", []):
                    for v in r.get("verbs", []):
                        out.add((g, res, v, tuple(r.get("resourceNames", []))))
        return out

    theirs = set()
    for d in yaml.safe_load_all(path.read_text()):
        if d and d.get("kind") in ("ClusterRole", "Role"):
            theirs |= {(g, r, v) for g, r, v, _ in norm(d["rules"])}
    docs = render.docs()
    ours = set()
    for d in find(docs, "ClusterRole") + find(docs, "Role"):
        if "adapter" in d["metadata"]["name"]:
            ours |= {(g, r, v) for g, r, v, _ in norm(d["rules"])}
    assert theirs <= ours, f"the chart lacks adapter rules: {sorted(theirs - ours)}"
    assert ours - theirs <= {("coordination.k8s.io", "leases", v) for v in ("create", "get", "update", "patch")} \
        | {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")} \
        | {("", "namespaces", v) for v in ("get", "list", "watch")}, \
        f"the chart grants the adapter more than it declares: {sorted(ours - theirs)}"


def test_names_fit_kubernetes_limits_for_long_release_names(render):
    docs = render.docs(release="a-very-long-release-name-for-a-platform-team-x", values=[FULL])
    for d in docs:
        # Service names are DNS labels (63); other names are DNS subdomains (253)
        limit = 63 if d["kind"] == "Service" else 253
        assert len(d["metadata"]["name"]) <= limit, d["metadata"]["name"]
        for value in d["metadata"].get("labels", {}).values():
            assert len(str(value)) <= 63, value
    for dep in find(docs, "Deployment"):
        assert len(dep["metadata"]["name"]) <= 63


def test_dockerfile_is_multistage_nonroot_pinned_and_installs_the_locked_services_only():
    text = (REPO / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage"
    base = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ARG PYTHON_IMAGE="))
    name, _, tag = base.partition(":")
    assert tag and tag != "latest" and tag.count(".") >= 2, f"base image {base!r} is not pinned to a patch release"
    # dependencies only from the hashed lock, the package itself without resolving anything more
    assert "pip install --require-hashes --no-deps -r requirements/image.txt" in text
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert all("--no-deps" in line for line in installs), installs
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    # the image user is the chart's runAsUser
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(user[-1].split(":")[0]) == values["podSecurityContext"]["runAsUser"]
    ignored = (REPO / ".dockerignore").read_text().split()
    packages = ("dynamo_scaling", "adapter", "external_metrics", "scaler")
    for needed in ("pyproject.toml", "README.md", "requirements", *packages):
        assert needed not in ignored, f".dockerignore drops {needed}, which the install needs"
    for pkg in packages:
        assert f"COPY {pkg}/ {pkg}/" in text, f"the build stage does not copy {pkg}/"
    # development code and data stay out of the image
    for dev in ("devcluster", "tests", "benchmarks", "traces"):
        assert f"COPY {dev}/" not in text, f"the image must not carry {dev}/"
