"""Pure logic: label selectors, quantity strings, the signal mapping, the cache's staleness."""

from __future__ import annotations

import pytest

from external_metrics.cache import Cache, NoSeries, Unavailable
from external_metrics.prom import SignalValue
from external_metrics.quantity import format_quantity, parse_quantity
from external_metrics.selectors import SelectorError, parse
from external_metrics.signals import DEFAULT_SIGNALS, MappingError, SignalMapping

# -- selectors ------------------------------------------------------------------------------

LABELS = {"dgd": "llm", "service": "decode", "model": "m1", "dynamo_namespace": "ns-llm"}


@pytest.mark.parametrize("text,matches", [
    ("", True),
    ("dgd=llm", True), ("dgd==llm", True), ("dgd=other", False),
    ("dgd=llm,service=decode", True), ("dgd=llm,service=prefill", False),
    ("service!=prefill", True), ("service!=decode", False), ("absent!=x", True),
    ("service in (decode, prefill)", True), ("service in (prefill)", False),
    ("service notin (prefill)", True), ("service notin (decode,prefill)", False),
    ("model", True), ("absent", False), ("!absent", True), ("!model", False),
    ("nvidia.com/dynamo-component=Decode", False),
    ("dgd=llm , service in (decode) , !gpu", True),
])
def test_selector_matching(text, matches):
    assert parse(text).matches(LABELS) is matches


def test_selector_numeric_comparisons():
    assert parse("replicas>2").matches({"replicas": "3"})
    assert not parse("replicas<2").matches({"replicas": "3"})
    assert not parse("replicas>2").matches({"replicas": "x"})


@pytest.mark.parametrize("text,fragment", [
    ("=x", "expected a label key"),
    ("a=b=c", "expected ','"),
    ("a in b", "expected '('"),
    ("a in (b", "missing ')'"),
    ("a in ()", "at least one value"),
    ("a=b,", "expected a requirement"),
    ("a,,b", "expected a label key"),
    ("Bad Key=1", "unexpected 'Key'"),
    ("a=-x", "invalid label value"),
    ("a>x", "not an integer"),
    ("UPPER.example.com/x=1", "prefix must be a DNS subdomain"),
    ("x" * 64 + "=1", "name must be 1-63 characters"),
    ("a=" + "v" * 64, "invalid label value"),
    ("a=b" + ",a=b" * 2000, "limit is 4096"),
])
def test_selector_errors_are_clear(text, fragment):
    with pytest.raises(SelectorError, match=None) as err:
        parse(text)
    assert fragment in str(err.value)


def test_selector_round_trips_and_equalities():
    sel = parse("dgd=llm,service in (decode),model notin (a,b),!x")
    assert str(sel) == "dgd=llm,service in (decode),model notin (a,b),!x"
    assert sel.equalities() == {"dgd": "llm", "service": "decode"}


# -- quantities -----------------------------------------------------------------------------

@pytest.mark.parametrize("value,text", [
    (0, "0"), (2, "2"), (12000, "12000"), (1.5, "1500m"), (0.7, "700m"), (-1.5, "-1500m"),
    (0.0001, "100u"), (1 / 3, "333333333n"), (123456.789, "123456789m"), (0.95, "950m"),
])
def test_format_quantity(value, text):
    assert format_quantity(value) == text
    assert parse_quantity(text) == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_format_quantity_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        format_quantity(bad)


@pytest.mark.parametrize("text,value", [("1Ki", 1024), ("1.5k", 1500), ("1e3", 1000), ("2E", 2e18),
                                        ("700m", 0.7), (".5", 0.5), ("5e-3", 0.005)])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "1mm", "m"])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


# -- signal mapping -------------------------------------------------------------------------

ALL = ("dynamo_queue_depth", "dynamo_kv_cache_usage", "dynamo_kv_cache_usage_max", "dynamo_kv_active_blocks",
       "dynamo_inflight_requests", "dynamo_ttft_seconds", "dynamo_ttft_seconds_p95", "dynamo_itl_seconds",
       "dynamo_itl_seconds_p95", "dynamo_request_rate")


def test_default_mapping_covers_every_signal_and_both_kv_families():
    """The default finds a series' DGD from stock labels only: every pod's series are joined
    on (namespace, pod) to that pod's Dynamo namespace and component, and `dgd`/`service`
    appear nowhere in the PromQL."""
    m = SignalMapping()
    assert m.preset == "dynamo"
    for name in ALL:
        q = m.render(name)
        assert "{sel}" not in q and "{by}" not in q and "{window}" not in q and "{join}" not in q
        assert "dgd" not in q and "service" not in q
        assert "by (namespace, dynamo_namespace, dynamo_component, model" in q
        assert "on (namespace, pod) group_left (dynamo_namespace, dynamo_component)" in q
        assert 'dynamo_component_inflight_requests{dynamo_endpoint="generate",pod!=""}' in q
        assert 'label_replace(dynamo_component_router_requests_total{pod!=""}, "dynamo_component", "frontend"' in q
    kv = m.render("dynamo_kv_cache_usage")
    assert "dynamo_component_kvstats_active_blocks" in kv and "vllm:kv_cache_usage_perc" in kv
    assert "dynamo_component_gpu_cache_usage_percent" in kv


def test_dgd_labels_preset_reads_the_relabelled_labels():
    m = SignalMapping.from_overrides({"preset": "dgd-labels"})
    for name in ALL:
        q = m.render(name)
        assert "{join}" not in q and "group_left" not in q and "dynamo_component_router" not in q
        assert 'dgd!=""' in q and "by (namespace, dgd, service, dynamo_namespace, model" in q
    q = m.render("dynamo_queue_depth", where={"namespace": "ns", "dgd": "llm", "service": "decode"})
    assert 'dgd="llm"' in q and 'service="decode"' in q and 'namespace="ns"' in q
    assert m.identity({"namespace": "ns", "dgd": "llm", "service": "decode", "model": "m"}) == \
        ("ns", {"dgd": "llm", "service": "decode", "dynamo_namespace": "", "model": "m"})


def test_stock_filters_go_to_the_pod_identity():
    """A DGD is its Dynamo namespace `<ns>-<dgd>` in either spelling Dynamo uses; a service is a
    Dynamo component (renamed through `services`); the frontend's identity is only asked for
    when the frontend can match."""
    m = SignalMapping.from_overrides({"services": {"backend": "decode"}})
    q = m.render("dynamo_kv_cache_usage", where={"namespace": "team-a", "dgd": "llm.v2", "service": "decode"})
    assert 'namespace="team-a"' in q
    assert 'dynamo_namespace=~"team\\\\-a\\\\-llm\\\\.v2|team_a_llm\\\\.v2"' in q
    assert 'dynamo_component="backend"' in q and "dynamo_component_router" not in q
    q = m.render("dynamo_request_rate", where={"namespace": "ns", "dgd": "llm", "service": "frontend"})
    assert "dynamo_component_router_requests_total" in q and "dynamo_component_inflight_requests" not in q
    # an unknown component still gives a valid query, which finds nothing
    q = m.render("dynamo_queue_depth", where={"namespace": "ns", "dynamo_component": "prefill", "service": "decode"})
    assert 'pod=""' in q
    with pytest.raises(MappingError, match="needs the namespace"):
        m.render("dynamo_queue_depth", where={"dgd": "llm"})
    with pytest.raises(MappingError, match="unknown identity label"):
        m.render("dynamo_queue_depth", where={"gpu": "h100"})


@pytest.mark.parametrize("labels,identity", [
    ({"namespace": "ns1", "dynamo_namespace": "ns1_llm", "dynamo_component": "backend", "model": "m"},
     ("ns1", {"dgd": "llm", "service": "decode", "dynamo_namespace": "ns1_llm", "model": "m"})),
    ({"namespace": "team-a", "dynamo_namespace": "team_a_llm_x", "dynamo_component": "prefill"},
     ("team-a", {"dgd": "llm-x", "service": "prefill", "dynamo_namespace": "team_a_llm_x", "model": ""})),
    ({"namespace": "team-a", "dynamo_namespace": "team-a-llm", "dynamo_component": "frontend"},
     ("team-a", {"dgd": "llm", "service": "frontend", "dynamo_namespace": "team-a-llm", "model": ""})),
    # the global Dynamo namespace belongs to no DGD
    ({"namespace": "ns1", "dynamo_namespace": "dynamo", "dynamo_component": "backend"},
     ("ns1", {"dgd": "", "service": "decode", "dynamo_namespace": "dynamo", "model": ""})),
])
def test_stock_identity_from_dynamo_labels(labels, identity):
    m = SignalMapping.from_overrides({"services": {"backend": "decode"}})
    assert m.identity(labels) == identity


def test_render_with_filters_window_and_relabelled_names():
    m = SignalMapping.from_overrides({"preset": "dgd-labels",
        "labels": {"dgd": "label_nvidia_com_dynamo_graph_deployment_name",
                   "service": "label_nvidia_com_dynamo_component"},
        "window": "2m", "matchers": 'job="dynamo"'})
    q = m.render("dynamo_ttft_seconds", where={"namespace": "ns", "dgd": 'we"ird'}, window="30s")
    assert 'label_nvidia_com_dynamo_graph_deployment_name!=""' in q
    assert 'job="dynamo"' in q and 'namespace="ns"' in q
    assert 'label_nvidia_com_dynamo_graph_deployment_name="we\\"ird"' in q
    assert "[30s]" in q and "[2m]" not in q
    assert "[2m]" in m.render("dynamo_request_rate")
    ns, labels = m.identity({"namespace": "ns", "label_nvidia_com_dynamo_graph_deployment_name": "llm",
                             "label_nvidia_com_dynamo_component": "decode", "model": "m"})
    assert ns == "ns" and labels == {"dgd": "llm", "service": "decode", "dynamo_namespace": "", "model": "m"}


def test_overrides_rename_add_and_drop_signals(tmp_path):
    path = tmp_path / "signals.yaml"
    path.write_text(
        "signals:\n"
        "  dynamo_queue_depth:\n"
        "    query: 'sum by ({by}) (dynamo_frontend_queued_requests_v2{{sel}})'\n"
        "  my_signal:\n"
        "    query: 'max by ({by}) (foo{{sel}})'\n"
        "    description: custom\n"
        "  dynamo_itl_seconds_p95: null\n")
    m = SignalMapping.load(path)
    assert "dynamo_frontend_queued_requests_v2" in m.render("dynamo_queue_depth")
    assert m.signals["dynamo_queue_depth"].description == DEFAULT_SIGNALS["dynamo_queue_depth"].description
    assert "my_signal" in m.signals and "dynamo_itl_seconds_p95" not in m.signals
    with pytest.raises(MappingError, match="unknown signal"):
        m.render("dynamo_itl_seconds_p95")


@pytest.mark.parametrize("overrides,fragment", [
    ({"signals": {"x": {"query": "sum(foo)"}}}, "must contain {sel} and {by}"),
    ({"signals": {"Bad-Name": {"query": "sum by ({by}) (x{{sel}})"}}}, "signal names must match"),
    ({"window": "5 minutes"}, "not a PromQL duration"),
    ({"labels": {"dgd": "bad-label"}}, "not a Prometheus label name"),
    ({"signals": {"dynamo_queue_depth": "oops"}}, "expected a mapping or null"),
    ({"bogus": 1}, "bogus"),
    ({"preset": "dgd"}, "dgd-labels"),
    ({"worker_identity": "sum(x)"}, "not a series selector"),
])
def test_bad_overrides_are_rejected(overrides, fragment):
    with pytest.raises(MappingError) as err:
        SignalMapping.from_overrides(overrides)
    assert fragment in str(err.value)


def test_mapping_file_errors(tmp_path):
    with pytest.raises(MappingError, match="No such file"):
        SignalMapping.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("signals: [\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        SignalMapping.load(bad)


# -- cache ----------------------------------------------------------------------------------

def test_cache_staleness_is_unavailable_never_zero():
    now = [1000.0]
    cache = Cache(["q"], staleness_s=10, clock=lambda: now[0])
    with pytest.raises(Unavailable, match="no data collected yet"):
        cache.lookup("q", "ns")
    cache.update("q", [SignalValue("q", "ns", {"dgd": "a", "service": "s"}, 3.0, 999.0)])
    values, at = cache.lookup("q", "ns", parse("dgd=a"))
    assert [v.value for v in values] == [3.0] and at == 1000.0
    with pytest.raises(NoSeries):
        cache.lookup("q", "ns", parse("dgd=b"))
    with pytest.raises(NoSeries):
        cache.lookup("q", "other")
    cache.fail("q", "Prometheus down")
    now[0] += 9
    assert cache.lookup("q", "ns")[0]  # within the bound the last good values still serve
    now[0] += 2
    with pytest.raises(Unavailable, match="11 s old.*Prometheus down"):
        cache.lookup("q", "ns")


def test_cache_lookup_through_its_label_index_matches_every_value_the_selector_does():
    cache = Cache(["q"], staleness_s=10, clock=lambda: 1000.0)
    values = [SignalValue("q", "ns", {"dgd": f"d{i % 7}", "service": f"s{i % 3}", **({"x": "1"} if i % 5 else {})},
                          float(i), 999.0) for i in range(60)]
    values.append(SignalValue("q", "ns", {"service": "s1"}, 99.0, 999.0))  # no dgd label at all
    cache.update("q", values + [SignalValue("q", "other", {"dgd": "d1", "service": "s1"}, -1.0, 999.0)])
    selectors = ["dgd=d1", "dgd=d1,service=s1", "service=s1,dgd in (d1)", "dgd=d1,dgd=d2", "dgd!=d1,service=s2",
                 "dgd in (d1,d2),x", "service=s1,!dgd", "dgd=d9", "service==s0,x=1", "dgd=d3,service=s0,x"]
    for text in selectors:
        sel = parse(text)
        want = [v for v in values if sel.matches(v.labels)]  # in collection order
        if not want:
            with pytest.raises(NoSeries):
                cache.lookup("q", "ns", sel)
            continue
        assert cache.lookup("q", "ns", sel)[0] == want, text
    # a new collection replaces the index with the values
    cache.update("q", [SignalValue("q", "ns", {"dgd": "d1", "service": "s1"}, float(i), 999.0) for i in range(20)])
    assert len(cache.lookup("q", "ns", parse("dgd=d1,service=s1"))[0]) == 20
    with pytest.raises(NoSeries):
        cache.lookup("q", "ns", parse("dgd=d2"))


def _memo_app(memo_bytes: int | None = None):
    from external_metrics.api import create_app
    from external_metrics.metrics import ServerMetrics
    from external_metrics.reader import Reader

    mapping = SignalMapping()
    cache = Cache(list(mapping.signals), staleness_s=10, clock=lambda: 1000.0)
    cache.update("dynamo_queue_depth", [
        SignalValue("dynamo_queue_depth", "ns", {"dgd": "a", "service": f"s{i}"}, float(i), 1000.0) for i in range(50)])
    app = create_app(Reader(mapping, cache), ServerMetrics(cache), serve_api=True)
    reads = app.app  # the hot path behind the guard
    if memo_bytes is not None:
        reads.memo_bytes = memo_bytes
    return app, reads


def _get(app, qs: bytes) -> tuple[int, dict]:
    import asyncio
    import json

    from external_metrics.api import BASE

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": f"{BASE}/namespaces/ns/dynamo_queue_depth",
             "query_string": qs, "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_remembered_answers_follow_each_collection_and_staleness():
    from external_metrics.api import create_app
    from external_metrics.metrics import ServerMetrics
    from external_metrics.reader import Reader

    mapping = SignalMapping()
    now = [1000.0]
    cache = Cache(list(mapping.signals), staleness_s=10, clock=lambda: now[0])
    app = create_app(Reader(mapping, cache), ServerMetrics(cache), serve_api=True)

    def get(qs: bytes = b"labelSelector=dgd%3Da") -> tuple[int, dict]:
        return _get(app, qs)

    def collect(value: float) -> None:
        cache.update("dynamo_queue_depth", [
            SignalValue("dynamo_queue_depth", "ns", {"dgd": "a", "service": "s"}, value, now[0]),
            SignalValue("dynamo_queue_depth", "ns", {"dgd": "b", "service": "s"}, 7.0, now[0])])

    assert get()[0] == 503
    collect(3.0)
    assert [i["value"] for i in get()[1]["items"]] == ["3"]
    assert [i["value"] for i in get()[1]["items"]] == ["3"]  # the remembered answer
    assert [i["value"] for i in get(b"labelSelector=dgd%3Db")[1]["items"]] == ["7"]
    now[0] += 5
    collect(4.0)
    assert [i["value"] for i in get()[1]["items"]] == ["4"]  # a new collection replaces it
    now[0] += 11
    code, body = get()
    assert code == 503 and "staleness bound" in body["message"]  # never a stale remembered value
    code, body = get(b"labelSelector=dgd+in+%28a")
    assert code == 400 and body["reason"] == "BadRequest"


def test_unknown_or_repeated_query_parameters_are_refused():
    app, reads = _memo_app()
    for qs, name in ((b"labelSelector=dgd%3Da&x=1", '"x"'), (b"foo", '"foo"'),
                     (b"labelSelector=dgd%3Da&labelSelector=dgd%3Db", "labelSelector")):
        code, body = _get(app, qs)
        assert code == 400 and body["reason"] == "BadRequest" and name in body["message"], (qs, body)
    assert reads.memo_size() == (0, 0)
    assert _get(app, b"")[0] == 200 and _get(app, b"labelSelector=dgd%3Da")[0] == 200


def test_remembered_answers_are_keyed_by_the_normalised_request():
    app, reads = _memo_app()
    forms = [b"labelSelector=dgd%3Da%2Cservice%3Ds1", b"labelSelector=service%3Ds1%2Cdgd%3Da",
             b"labelSelector=service%3Ds1,dgd%3Da", b"labelSelector=dgd+%3D+a%2C+service%3Ds1"]
    answers = [_get(app, qs) for qs in forms * 3]
    assert all(a == answers[0] for a in answers) and [i["value"] for i in answers[0][1]["items"]] == ["1"]
    assert reads.memo_size()[0] == 1  # one request, however it is spelt


def test_remembered_answers_are_bounded_in_bytes():
    app, reads = _memo_app(memo_bytes=4096)
    for i in range(50):
        assert _get(app, f"labelSelector=service%3Ds{i}".encode())[0] == 200
        assert reads.memo_size()[1] <= 4096
    entries, size = reads.memo_size()
    assert 0 < entries < 50 and size <= 4096
    # the newest answers stay remembered, and an evicted one is simply computed again
    assert _get(app, b"labelSelector=service%3Ds0")[1]["items"][0]["value"] == "0"


# -- packaging ------------------------------------------------------------------------------

def test_committed_proto_module_is_reproducible():
    from pathlib import Path

    from external_metrics.proto import generate

    committed = (Path(generate.HERE) / generate.OUTPUT).read_text()
    assert generate.generate() == committed, "run: python -m external_metrics.proto.generate"


def test_planner_imports_have_no_server_side_effects():
    import subprocess
    import sys

    code = ("import sys, external_metrics.signals, external_metrics.prom, external_metrics.cache, "
            "external_metrics.selectors, external_metrics.quantity; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'grpc', 'kubernetes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
