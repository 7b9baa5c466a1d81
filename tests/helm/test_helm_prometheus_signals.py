"""Chart: optional PodMonitors for Dynamo's pods, one signal mapping mounted into both the
metrics server and the planner, and Prometheus credentials from Secrets. Rendered with the real
helm; the rendered settings are read back through each component's own settings code."""

from __future__ import annotations

import yaml
from helm_chart_helpers import find, one

from external_metrics.prom import PrometheusConnection
from external_metrics.settings import Settings
from external_metrics.signals import SignalMapping

MS = "ds-dynamo-scaling-metrics-server"
PLANNER = "ds-dynamo-scaling-planner"
SIGNALS_CM = "ds-dynamo-scaling-signals"
WITH_PLANNER = {"planner.enabled": "true", "planner.deployment.name": "llm"}


def container(docs: list[dict], name: str) -> dict:
    return one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def env(c: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def mounts(docs: list[dict], name: str) -> dict[str, tuple[str, dict]]:
    """mountPath -> (volume name, volume source) of a Deployment's first container."""
    spec = one(docs, "Deployment", name)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    return {m["mountPath"]: (m["name"], volumes[m["name"]]) for m in spec["containers"][0]["volumeMounts"]}


def test_defaults_add_no_podmonitor_no_mapping_and_no_credentials(render):
    docs = render.docs(sets=WITH_PLANNER)
    assert not find(docs, "PodMonitor") and not find(docs, "ConfigMap", SIGNALS_CM)
    for name in (MS, PLANNER):
        c = container(docs, name)
        assert not any("signals" in a or "prometheus-" in a.split("=")[0][2:] for a in c["args"]
                       if a.startswith("--") and not a.startswith("--prometheus-url")), c["args"]
        assert not [k for k in env(c) if "PROMETHEUS" in k or "SIGNALS" in k]
        assert not [p for p in mounts(docs, name) if "prometheus" in p or "signals" in p]


def test_podmonitors_select_dynamo_pods_as_dynamos_chart_does(render):
    docs = render.docs(sets={"podMonitors.enabled": "true", "podMonitors.namespaces": "{team-a}",
                             "podMonitors.labels.release": "prom"})
    pms = {d["metadata"]["name"]: d for d in find(docs, "PodMonitor")}
    assert set(pms) == {"ds-dynamo-scaling-dynamo-frontend", "ds-dynamo-scaling-dynamo-worker"}
    for name, types, port in (("frontend", ["frontend"], "http"), ("worker", ["worker", "prefill", "decode"], "system")):
        spec = pms[f"ds-dynamo-scaling-dynamo-{name}"]["spec"]
        assert spec["selector"]["matchExpressions"] == [
            {"key": "nvidia.com/dynamo-component-type", "operator": "In", "values": types},
            {"key": "nvidia.com/metrics-enabled", "operator": "In", "values": ["true"]}]
        assert spec["namespaceSelector"] == {"matchNames": ["team-a"]}
        [ep] = spec["podMetricsEndpoints"]
        assert ep["port"] == port and ep["path"] == "/metrics" and "relabelings" not in ep
        assert pms[f"ds-dynamo-scaling-dynamo-{name}"]["metadata"]["labels"]["release"] == "prom"
    # stock labels only: the default mapping needs nothing more, so no mapping is rendered
    assert not find(docs, "ConfigMap", SIGNALS_CM)


def test_dgd_labels_relabelling_comes_with_the_matching_preset_for_both_readers(render):
    docs = render.docs(sets={"podMonitors.enabled": "true", "podMonitors.addDgdLabels": "true", **WITH_PLANNER})
    for pm in find(docs, "PodMonitor"):
        assert pm["spec"]["namespaceSelector"] == {"any": True}
        [ep] = pm["spec"]["podMetricsEndpoints"]
        assert [(r["sourceLabels"], r["targetLabel"]) for r in ep["relabelings"]] == [
            (["__meta_kubernetes_pod_label_nvidia_com_dynamo_graph_deployment_name"], "dgd"),
            (["__meta_kubernetes_pod_label_nvidia_com_dynamo_component"], "service")]
    text = one(docs, "ConfigMap", SIGNALS_CM)["data"]["signals.yaml"]
    assert SignalMapping.from_overrides(yaml.safe_load(text)).preset == "dgd-labels"
    _both_read(docs, SIGNALS_CM)


def _both_read(docs: list[dict], configmap: str) -> None:
    """The metrics server's --signals-file and the planner's DYNAMO_PLANNER_SIGNALS_FILE are the
    same file of the same ConfigMap."""
    ms = container(docs, MS)
    [flag] = [a for a in ms["args"] if a.startswith("--signals-file=")]
    path = flag.split("=", 1)[1]
    assert env(container(docs, PLANNER))["DYNAMO_PLANNER_SIGNALS_FILE"] == path
    for name in (MS, PLANNER):
        folder, file = path.rsplit("/", 1)
        vol_name, vol = mounts(docs, name)[folder]
        assert vol["configMap"]["name"] == configmap and vol["configMap"]["items"] == [{"key": file, "path": file}]
        annotations = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/signals" in annotations


def test_one_custom_mapping_reaches_the_metrics_server_and_the_planner(render, tmp_path):
    values = tmp_path / "values.yaml"
    mapping = {"services": {"backend": "decode", "frontend": "Frontend"}, "window": "2m",
               "signals": {"dynamo_queue_depth": {"query": "sum by ({by}) (my_queue{{sel}}{join})"}}}
    values.write_text(yaml.safe_dump({"signals": {"mapping": mapping}}))
    docs = render.docs(values=[values], sets=WITH_PLANNER)
    rendered = yaml.safe_load(one(docs, "ConfigMap", SIGNALS_CM)["data"]["signals.yaml"])
    assert rendered == mapping
    m = SignalMapping.from_overrides(rendered)
    assert "my_queue" in m.render("dynamo_queue_depth") and m.services["backend"] == "decode"
    _both_read(docs, SIGNALS_CM)
    # a mapping of one's own replaces the rendered one
    docs = render.docs(sets={"signals.existingConfigMap": "my-signals", **WITH_PLANNER})
    assert not find(docs, "ConfigMap", SIGNALS_CM)
    _both_read(docs, "my-signals")


def test_prometheus_credentials_are_mounted_and_named_as_each_component_reads_them(render, monkeypatch):
    sets = {"prometheus.url": "https://prometheus.monitoring.svc:9091",
            "prometheus.auth.basicAuthSecret": "prom-basic", "prometheus.auth.caSecret": "prom-ca",
            "prometheus.auth.clientCertSecret": "prom-client", "prometheus.auth.headers.X-Scope-OrgID": "team-a",
            **WITH_PLANNER}
    docs = render.docs(sets=sets)
    for name, prefix in ((MS, "DYNAMO_METRICS_"), (PLANNER, "DYNAMO_PLANNER_")):
        e = env(container(docs, name))
        assert e[f"{prefix}PROMETHEUS_USERNAME"] == {"secretKeyRef": {"name": "prom-basic", "key": "username"}}
        m = mounts(docs, name)
        # every file setting points into a Secret volume holding that key
        for var, secret in (("PASSWORD_FILE", "prom-basic"), ("CA_FILE", "prom-ca"), ("CERT_FILE", "prom-client"),
                            ("KEY_FILE", "prom-client")):
            folder, file = e[f"{prefix}PROMETHEUS_{var}"].rsplit("/", 1)
            _, vol = m[folder]
            assert vol["secret"]["secretName"] == secret and {"key": file, "path": file} in vol["secret"]["items"]
        # the components' own settings code reads those names
        for k in list(e):
            if k.startswith(prefix + "PROMETHEUS_"):
                monkeypatch.setenv(k, e[k] if isinstance(e[k], str) else "prometheus-user")
        if prefix == "DYNAMO_METRICS_":
            conn = Settings().prometheus_connection()
        else:
            conn = PrometheusConnection.model_validate(PrometheusConnection.env_overrides({}, prefix + "PROMETHEUS_"))
        assert conn.username == "prometheus-user" and conn.headers == {"X-Scope-OrgID": "team-a"}
        assert str(conn.ca_file).endswith("/ca.crt") and str(conn.key_file).endswith("/tls.key")
        for k in list(e):
            monkeypatch.delenv(k, raising=False)

    docs = render.docs(sets={"prometheus.auth.bearerTokenSecret": "prom-token", **WITH_PLANNER})
    for name, prefix in ((MS, "DYNAMO_METRICS_"), (PLANNER, "DYNAMO_PLANNER_")):
        folder, file = env(container(docs, name))[f"{prefix}PROMETHEUS_BEARER_TOKEN_FILE"].rsplit("/", 1)
        assert mounts(docs, name)[folder][1]["secret"] == {"secretName": "prom-token",
                                                            "items": [{"key": "token", "path": "token"}]}
    docs = render.docs(sets={"prometheus.auth.serviceAccountToken": "true"})
    assert env(container(docs, MS))["DYNAMO_METRICS_PROMETHEUS_BEARER_TOKEN_FILE"] == \
        "/var/run/secrets/kubernetes.io/serviceaccount/token"


def test_contradictory_credentials_are_refused(render):
    r = render.run(sets={"prometheus.auth.bearerTokenSecret": "t", "prometheus.auth.basicAuthSecret": "b"},
                   check=False)
    assert r.returncode != 0 and "basicAuthSecret and a bearer token exclude each other" in r.stderr
    r = render.run(sets={"prometheus.auth.bearerTokenSecret": "t", "prometheus.auth.serviceAccountToken": "true"},
                   check=False)
    assert r.returncode != 0 and "bearerTokenSecret or serviceAccountToken" in r.stderr
