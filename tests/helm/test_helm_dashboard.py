"""The Grafana dashboard only queries metrics that exist: Dynamo's own names (listed in the
architecture notes) and the names our components define in their code."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pytest

from helm_chart_helpers import CHART, REPO, one

DASHBOARD = CHART / "files" / "dashboards" / "dynamo-scaling.json"
NAME = re.compile(r"\b(?:dynamo_[a-z0-9_]+|vllm:[a-z0-9_]+)")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "le"}
SUFFIXES = ("_bucket", "_sum", "_count")


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


def _architecture_names() -> set[str]:
    path = Path(os.environ.get("DYNAMO_SCALING_ARCHITECTURE", REPO.parent / "shared" / "ARCHITECTURE.md"))
    if not path.exists():
        pytest.fail(f"architecture notes not found at {path}; set DYNAMO_SCALING_ARCHITECTURE")
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    names = set(NAME.findall(text))
    for span in re.findall(r"`([^`]+)`", text):
        span = span.replace("...", "dynamo_frontend")
        parts = re.split(r"(\{[^}]*\})", span)
        choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
        for combo in itertools.product(*choices):
            names |= set(NAME.findall("".join(combo)))
    return names


def _code_names() -> set[str]:
    names = set()
    for pkg in ("adapter", "external_metrics", "scaler"):
        for py in (REPO / pkg).rglob("*.py"):
            names |= set(NAME.findall(py.read_text(errors="replace")))
    return names


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
    known = _architecture_names() | _code_names()
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
