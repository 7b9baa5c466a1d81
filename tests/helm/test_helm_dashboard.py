"""The Grafana dashboard only queries metrics that exist: the names documented in docs/metrics.md
(Dynamo's own names the project reads, and the metrics our components export)."""

from __future__ import annotations

import json
import re


from helm_chart_helpers import CHART, REPO, one

DASHBOARD = CHART / "files" / "dashboards" / "dynamo-scaling.json"
NAME = re.compile(r"\b(?:dynamo_[a-z0-9_]+|vllm:[a-z0-9_]+)")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "le"}
SUFFIXES = ("_bucket", "_sum", "_count")
LABELS = {"dynamo_namespace", "dynamo_component", "dynamo_endpoint"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label
    names (inside {...} or by/without (...)), durations, strings or dashboard variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                     # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                    # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "0", expr)                  # dashboard variables
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        tail = expr[m.end():].lstrip()
        if tail.startswith("(") or m.group() in KEYWORDS:
            continue
        names.add(m.group())
    return names


def test_extractor():
    assert promql_metric_names(
        'histogram_quantile(0.95, sum by (le) (rate(x_bucket{model=~"$model"}[$__rate_interval])))') == {"x_bucket"}
    assert promql_metric_names("count by (a, b) (y{c=\"d\"}) / vector($t / 1000)") == {"y"}
    assert promql_metric_names("changes((count by (w) (z))[10m:30s])") == {"z"}


def _documented_names() -> set[str]:
    """Every metric name in docs/metrics.md: the signals' PromQL, Dynamo's names the project reads
    and each component's own metrics. That file is generated from the code and checked current
    (tests/foundation/test_docs_current.py), and the live Dynamo names in it are checked against a
    scrape of the real processes (tests/dynamo/test_live_dynamo.py)."""
    return set(NAME.findall((REPO / "docs" / "metrics.md").read_text()))


def test_documented_dynamo_names_cover_the_signal_mapping():
    from external_metrics.dynamo_names import DYNAMO_METRICS
    from external_metrics.signals import DEFAULT_SIGNALS, SignalMapping

    listed = {m.name for m in DYNAMO_METRICS}
    mapping = SignalMapping()
    used = set()
    for name in DEFAULT_SIGNALS:
        used |= set(NAME.findall(mapping.render(name))) - LABELS
    used = {n[: -len(s)] if (s := next((s for s in SUFFIXES if n.endswith(s)), "")) else n for n in used}
    assert used - listed == set(), "names the mapping reads but external_metrics/dynamo_names.py lacks"


def _queries(dashboard: dict):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for var in dashboard["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            m = re.match(r"label_values\((\w[\w:]*)\s*,", q["query"])
            yield f"variable {var['name']}", m.group(1) if m else q["query"]


def test_dashboard_queries_use_only_existing_metrics():
    known = _documented_names()
    dashboard = json.loads(DASHBOARD.read_text())
    unknown = []
    used = set()
    for where, expr in _queries(dashboard):
        for name in promql_metric_names(expr):
            base = name[: -len(s)] if (s := next((s for s in SUFFIXES if name.endswith(s)), "")) else name
            used.add(base)
            if name not in known and base not in known:
                unknown.append(f"{where}: {name}")
    assert not unknown, "metrics no component or Dynamo exports:\n" + "\n".join(unknown)
    # the dashboard covers what the issue asks: queue depth, KV usage, TTFT/ITL, pools
    assert {"dynamo_frontend_queued_requests", "dynamo_frontend_time_to_first_token_seconds",
            "dynamo_frontend_inter_token_latency_seconds", "dynamo_component_kvstats_active_blocks",
            "dynamo_frontend_worker_active_decode_blocks"} <= used


def test_dashboard_shape_and_configmap(render):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "dynamo-scaling"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model", "ttft_target_ms", "itl_target_ms"} <= variables
    cm = one(render.docs(), "ConfigMap", "ds-dynamo-scaling-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["dynamo-scaling.json"]) == dashboard
