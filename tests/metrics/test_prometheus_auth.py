"""Prometheus behind authentication, for the planner's client and the metrics server: a real
Prometheus started with its own --web.config.file (TLS with required client certificates, and
basic auth). Wrong or missing credentials give an error that names the setting to fix; the
right ones read the series."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml
from helpers import wait_for
from support import Exporter, MetricsServerProcess, dynamo_identity

from devcluster import certs
from devcluster.prometheus import Prometheus
from external_metrics.prom import PrometheusClient, PrometheusConnection, PrometheusError
from external_metrics.signals import SignalMapping

USER, PASSWORD = "scaler", "s3cret-passw0rd"
QUERY = 'vllm:num_requests_waiting{namespace="ns1"}'


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = tmp_path_factory.mktemp("prom-auth")
    ca = certs.make_ca(d, "prom-ca", "prometheus-ca")
    serving = certs.issue(ca, d, "prom", "prometheus", dns=("localhost",), ips=("127.0.0.1",), server=True)
    client_ca = certs.make_ca(d, "client-ca", "prometheus-client-ca")
    rogue_ca = certs.make_ca(d, "rogue-ca", "rogue-ca")
    files = {
        "ca": ca.cert,
        "client": certs.issue(client_ca, d, "client", "dynamo-scaling", client=True),
        "rogue": certs.issue(rogue_ca, d, "rogue", "dynamo-scaling", client=True),
    }
    (d / "password").write_text(PASSWORD + "\n")
    (d / "wrong-password").write_text("not-it\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt, which Prometheus' web config wants (libxcrypt has it)

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    web = d / "web.yml"
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(serving.cert), "key_file": str(serving.key),
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "client_ca_file": str(client_ca.cert)},
        "basic_auth_users": {USER: hashed}}))
    exp = Exporter(d / "exporter")
    exp.set([{"name": "vllm:num_requests_waiting", "labels": {"model_name": "m"}, "value": 5},
             *dynamo_identity("ns1", "llm", "prefill")])
    prom = Prometheus(d / "prometheus", web_config=web)
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    ctx.load_cert_chain(str(files["client"].cert), str(files["client"].key))
    prom.client_options = {"verify": ctx, "auth": (USER, PASSWORD)}  # for the launcher's own checks
    prom.start()
    try:
        assert prom.url.startswith("https://")
        prom.set_targets("prefill", [(exp.address, {"namespace": "ns1", "pod": "llm-prefill-0",
                                                    "component_type": "prefill"})])
        prom.wait_for_targets("prefill", 1)
        wait_for(lambda: prom.query(QUERY), what="the series in Prometheus")
        yield prom, files, d
    finally:
        prom.stop()
        exp.stop()


def _conn(files, d, **kw) -> PrometheusConnection:
    full = {"ca_file": files["ca"], "cert_file": files["client"].cert, "key_file": files["client"].key,
            "username": USER, "password_file": d / "password"}
    return PrometheusConnection(**{**full, **kw}, style="config")


@pytest.mark.parametrize("change,setting", [
    ({"ca_file": None}, "prometheus.ca_file"),  # its serving certificate is not trusted
    ({"cert_file": None, "key_file": None}, "prometheus.cert_file"),  # no client certificate
    ("rogue", "prometheus.cert_file"),  # a client certificate it does not accept
    ({"username": None, "password_file": None}, "no credentials: set prometheus.bearer_token_file"),
    ({"password_file": "wrong-password"}, "basic-auth credentials of prometheus.username / prometheus.password_file"),
])
def test_the_planner_client_names_the_setting_to_fix(secured, change, setting):
    prom, files, d = secured
    if change == "rogue":
        change = {"cert_file": files["rogue"].cert, "key_file": files["rogue"].key}
    elif change.get("password_file"):
        change = {"password_file": d / change["password_file"]}
    with PrometheusClient(prom.url, timeout_s=5, connection=_conn(files, d, **change)) as client:
        with pytest.raises(PrometheusError) as err:
            client.query(QUERY)
    assert setting in str(err.value), str(err.value)
    assert prom.url in str(err.value)


def test_the_planner_client_reads_the_series_with_the_right_credentials(secured):
    prom, files, d = secured
    with PrometheusClient(prom.url, connection=_conn(files, d)) as client:
        assert [s.value for s in client.query(QUERY)] == [5.0]
        values = SignalMapping().render("dynamo_queue_depth", {"namespace": "ns1", "dgd": "llm"})
        assert [s.value for s in client.query(values)] == [5.0]


def test_unreadable_credential_files_are_named_before_any_query(secured, tmp_path):
    prom, files, d = secured
    for kw, setting in (({"password_file": tmp_path / "missing"}, "prometheus.password_file"),
                        ({"ca_file": tmp_path / "missing.crt"}, "prometheus.ca_file"),
                        ({"key_file": files["rogue"].key}, "prometheus.cert_file")):  # key of another cert
        with pytest.raises(PrometheusError, match=setting.replace(".", r"\.")):
            PrometheusClient(prom.url, connection=_conn(files, d, **kw))


def test_the_metrics_server_names_its_flags_and_serves_with_the_right_ones(secured, tmp_path):
    prom, files, d = secured
    tls = [f"--prometheus-ca-file={files['ca']}", f"--prometheus-cert-file={files['client'].cert}",
           f"--prometheus-key-file={files['client'].key}", f"--prometheus-username={USER}"]
    common = ["--interval=0.5", "--staleness=5", "--authorization=none", "--http-serves-api"]
    wrong = MetricsServerProcess(tmp_path / "wrong", prom.url, *common, *tls,
                                 f"--prometheus-password-file={d / 'wrong-password'}", secure=False, grpc=False)
    try:
        wait_for(lambda: "--prometheus-username / --prometheus-password-file" in wrong.log_tail(20000),
                 what="the refusal, naming the flags, in the log")
        assert "answered 401" in wrong.log_tail(20000)
    finally:
        wrong.stop()
    right = MetricsServerProcess(tmp_path / "right", prom.url, *common, *tls,
                                 f"--prometheus-password-file={d / 'password'}", secure=False, grpc=False)
    try:
        q = urllib.parse.urlencode({"labelSelector": "dgd=llm,service=prefill"})
        url = f"{right.http_url}/apis/external.metrics.k8s.io/v1beta1/namespaces/ns1/dynamo_queue_depth?{q}"
        items = wait_for(lambda: httpx.get(url, timeout=5).json().get("items"), what="the value")
        assert items[0]["value"] == "5"
    finally:
        right.stop()
    # a flag given without its partner is refused at start
    bad = MetricsServerProcess.__new__(MetricsServerProcess)
    with pytest.raises(RuntimeError, match="--prometheus-cert-file and --prometheus-key-file go together"):
        MetricsServerProcess.__init__(bad, tmp_path / "bad", prom.url, f"--prometheus-cert-file={files['client'].cert}",
                                      secure=False, grpc=False)


class _Recorder(BaseHTTPRequestHandler):
    """An upstream that records the request headers and answers an empty result: Prometheus
    itself checks no bearer tokens (a proxy in front of it does)."""

    seen: list[dict] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_bearer_token_is_reread_for_every_query_and_headers_are_sent(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("first-token\n")
    conn = PrometheusConnection(bearer_token_file=token, headers="X-Scope-OrgID: team-a")
    try:
        with PrometheusClient(f"http://127.0.0.1:{server.server_port}", connection=conn) as client:
            client.query("up")
            token.write_text("rotated-token\n")  # a projected token is replaced in place
            client.query("up")
    finally:
        server.shutdown()
    assert [h["Authorization"] for h in _Recorder.seen] == ["Bearer first-token", "Bearer rotated-token"]
    assert {h["X-Scope-OrgID"] for h in _Recorder.seen} == {"team-a"}
