"""The chart's adapter webhooks rendered by real helm: the CRDs serve v1beta1 with the adapter's
conversion webhook, the ValidatingWebhookConfiguration, the serving certificate in each of its
three sources, and the Deployment, Service and NetworkPolicy pieces that carry them."""

from __future__ import annotations

import base64

import pytest
import yaml
from cryptography import x509
from helm_chart_helpers import REPO, find, one

from adapter import webhook

SVC = "ds-dynamo-scaling-adapter-webhook"
HOST = f"{SVC}.dynamo-scaling.svc"
CRD_NAMES = ("dynamographdeployments.nvidia.com", "dynamographdeploymentscalingadapters.nvidia.com")


def crds(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in find(docs, "CustomResourceDefinition") if d["metadata"]["name"] in CRD_NAMES}


def adapter_container(docs: list[dict]) -> dict:
    return one(docs, "Deployment", "ds-dynamo-scaling-adapter")["spec"]["template"]["spec"]["containers"][0]


def test_default_serves_both_versions_with_a_generated_certificate(render):
    docs = render.docs()
    secret = one(docs, "Secret", "ds-dynamo-scaling-adapter-webhook-tls")
    ca_b64 = secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(ca_b64))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    # the API server checks the Service's DNS name against a certificate signed by the caBundle
    leaf.verify_directly_issued_by(ca)
    assert HOST in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)

    for name, crd in crds(docs).items():
        want = yaml.safe_load((REPO / "crds" / f"nvidia.com_{name.split('.')[0]}.yaml").read_text())
        assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
            ("v1alpha1", True, True), ("v1beta1", True, False)], name
        conv = crd["spec"].pop("conversion")
        assert conv["strategy"] == "Webhook" and conv["webhook"]["conversionReviewVersions"] == ["v1"]
        assert conv["webhook"]["clientConfig"] == {
            "service": {"namespace": "dynamo-scaling", "name": SVC, "path": "/convert", "port": 443},
            "caBundle": ca_b64}
        # nothing else differs from crds/
        for v in want["spec"]["versions"]:
            v["served"] = True
        assert crd["spec"] == want["spec"]
    # the planning policy's CRD has one version and no conversion
    assert "conversion" not in one(docs, "CustomResourceDefinition", "dynamoscalingpolicies.scaling.dynamo-scaling.io")["spec"]

    vwc = one(docs, "ValidatingWebhookConfiguration", SVC)
    hook = vwc["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore" and hook["clientConfig"]["caBundle"] == ca_b64
    assert hook["clientConfig"]["service"] == {"namespace": "dynamo-scaling", "name": SVC, "path": "/validate",
                                               "port": 443}
    assert "namespaceSelector" not in hook  # all namespaces are watched by default
    # the same registration the adapter's own code describes (and tests/adapter exercises)
    ref = webhook.validating_configuration("x", "ca")["webhooks"][0]
    for key in ("name", "rules", "sideEffects", "admissionReviewVersions", "matchPolicy", "timeoutSeconds"):
        assert hook[key] == ref[key], key

    svc = one(docs, "Service", SVC)
    assert svc["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "adapter"

    c = adapter_container(docs)
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in c["ports"]
    assert "--webhook-port=9443" in c["args"] and "--webhook-bind-address=0.0.0.0" in c["args"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "webhook-tls")
    assert f"--webhook-cert-file={mount['mountPath']}/tls.crt" in c["args"]
    assert f"--webhook-key-file={mount['mountPath']}/tls.key" in c["args"]
    vols = {v["name"]: v for v in one(docs, "Deployment", "ds-dynamo-scaling-adapter")["spec"]["template"]["spec"]["volumes"]}
    assert vols["webhook-tls"]["secret"]["secretName"] == "ds-dynamo-scaling-adapter-webhook-tls"

    # the API server reaches the webhook port from an address the chart cannot know
    np = one(docs, "NetworkPolicy", "ds-dynamo-scaling-adapter")
    rule = next(r for r in np["spec"]["ingress"] if r["ports"][0]["port"] == 9443)
    assert "from" not in rule


def test_cert_manager_issues_and_injects(render):
    docs = render.docs(sets={"adapter.webhook.certManager.enabled": "true"})
    assert not find(docs, "Secret", "ds-dynamo-scaling-adapter-webhook-tls")
    cert = one(docs, "Certificate", SVC)
    assert HOST in cert["spec"]["dnsNames"]
    assert cert["spec"]["secretName"] == "ds-dynamo-scaling-adapter-webhook-tls"
    issuer = one(docs, "Issuer", cert["spec"]["issuerRef"]["name"])
    assert issuer["spec"] == {"selfSigned": {}}
    inject = f"dynamo-scaling/{SVC}"
    for crd in crds(docs).values():
        assert crd["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == inject
        assert "caBundle" not in crd["spec"]["conversion"]["webhook"]["clientConfig"]
    vwc = one(docs, "ValidatingWebhookConfiguration", SVC)
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == inject
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    # a given issuer is used instead of a self-signed one
    docs = render.docs(sets={"adapter.webhook.certManager.enabled": "true",
                             "adapter.webhook.certManager.issuerName": "corp-ca",
                             "adapter.webhook.certManager.issuerKind": "ClusterIssuer"})
    assert one(docs, "Certificate", SVC)["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer",
                                                                  "group": "cert-manager.io"}
    assert not find(docs, "Issuer")


def test_existing_secret_needs_its_ca(render):
    proc = render.run(sets={"adapter.webhook.certSecret": "my-webhook-tls"}, check=False)
    assert proc.returncode != 0 and "adapter.webhook.caBundle" in proc.stderr
    docs = render.docs(sets={"adapter.webhook.certSecret": "my-webhook-tls", "adapter.webhook.caBundle": "Q0E="})
    assert not [s for s in find(docs, "Secret") if "adapter" in s["metadata"]["name"]]
    for crd in crds(docs).values():
        assert crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] == "Q0E="
    assert one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    vols = {v["name"]: v for v in one(docs, "Deployment", "ds-dynamo-scaling-adapter")["spec"]["template"]["spec"]["volumes"]}
    assert vols["webhook-tls"]["secret"]["secretName"] == "my-webhook-tls"
    proc = render.run(sets={"adapter.webhook.certSecret": "x", "adapter.webhook.caBundle": "Q0E=",
                            "adapter.webhook.certManager.enabled": "true"}, check=False)
    assert proc.returncode != 0 and "not both" in proc.stderr


def test_watched_namespaces_fail_policy_and_exempt_users(render):
    docs = render.docs(sets={"adapter.watchNamespaces": "{llm,batch}", "adapter.webhook.failurePolicy": "Fail",
                             "adapter.webhook.exemptUsers": "{system:serviceaccount:dynamo:planner-serviceaccount}"})
    hook = one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    assert hook["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["llm", "batch"]}]}
    assert "--webhook-exempt-user=system:serviceaccount:dynamo:planner-serviceaccount" in adapter_container(docs)["args"]
    proc = render.run(sets={"adapter.webhook.failurePolicy": "Sometimes"}, check=False)
    assert proc.returncode != 0 and "/adapter/webhook/failurePolicy" in proc.stderr


@pytest.mark.parametrize("sets", [{"adapter.webhook.enabled": "false"}, {"adapter.enabled": "false"}],
                         ids=["webhook-off", "adapter-off"])
def test_without_the_webhook_only_v1alpha1_is_served(render, sets):
    docs = render.docs(sets=sets)
    assert not find(docs, "ValidatingWebhookConfiguration")
    assert not find(docs, "Service", SVC) and not find(docs, "Secret", "ds-dynamo-scaling-adapter-webhook-tls")
    for crd in crds(docs).values():
        assert "conversion" not in crd["spec"]
        assert {v["name"]: v["served"] for v in crd["spec"]["versions"]} == {"v1alpha1": True, "v1beta1": False}
    if sets.get("adapter.enabled") != "false":
        c = adapter_container(docs)
        assert not [a for a in c["args"] if a.startswith("--webhook")]
        assert "webhook" not in {p["name"] for p in c["ports"]}
