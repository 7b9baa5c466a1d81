"""Generate the metrics reference (docs/metrics.md) from the code: the scaling signals the
metrics server serves (their PromQL mapping), the Dynamo metrics they and the dashboard read, and
the metrics each component exports on `/metrics`. `python -m devtools.metrics_docs > docs/metrics.md`."""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from adapter.metrics import AdapterMetrics
from external_metrics.cache import Cache
from external_metrics.dynamo_names import DYNAMO_METRICS
from external_metrics.metrics import ServerMetrics
from external_metrics.signals import DEFAULT_SIGNALS, SignalMapping
from scaler.service.metrics import PlannerMetrics


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _registry_rows(registry: CollectorRegistry) -> list[str]:
    rows = []
    for family in sorted(registry.collect(), key=lambda f: f.name):
        labels = sorted({k for s in family.samples for k in s.labels if k not in ("le", "quantile")})
        name = family.name + ("_total" if family.type == "counter" else "")
        rows.append(f"| `{name}` | {family.type} | {', '.join(f'`{l}`' for l in labels) or '-'} | "
                    f"{_cell(family.documentation)} |")
    return rows


def _touch_labelled(metrics) -> None:
    # labelled families have no samples (and so no label names) until a child exists
    for attr in vars(metrics).values():
        names = getattr(attr, "_labelnames", ())
        if names:
            attr.labels(*["x"] * len(names))


DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
HAND_WRITTEN = "<!-- Hand-written from here on: python -m devtools.metrics_docs keeps it. -->"


def _hand_written() -> str:
    """The hand-written part of docs/metrics.md (after the marker), kept as it is."""
    try:
        text = DOC.read_text()
    except OSError:
        return ""
    return text[text.index(HAND_WRITTEN):] if HAND_WRITTEN in text else ""


def render() -> str:
    mapping = SignalMapping()
    out = ["# Metrics reference", "",
           "Generated from the code by `python -m devtools.metrics_docs`; do not edit by hand.", "",
           "## Scaling signals (`dynamo-scaling metrics-server`)", "",
           "Served as `external.metrics.k8s.io/v1beta1` metrics, by KEDA's `metrics-api` endpoint and "
           "by the KEDA external scaler, per DGD service, with `metricLabels` `dgd`, `service`, "
           "`dynamo_namespace` and `model`. The planner reads the same signals. Override any PromQL "
           "with `--signals-file`. The default mapping needs only the labels a stock cluster has; "
           "see [How a series finds its DGD and service](#how-a-series-finds-its-dgd-and-service).", "",
           "| signal | unit | meaning | PromQL (default mapping, every service) |", "| --- | --- | --- | --- |"]
    for name, sig in DEFAULT_SIGNALS.items():
        out.append(f"| `{name}` | {sig.unit or '-'} | {_cell(sig.description)} | `{_cell(mapping.render(name))}` |")
    out += ["", "## Dynamo's metrics read by the signals and the dashboard", "",
            "Exported by Dynamo's frontend and workers (names of the pinned `ai-dynamo` release). "
            "*live*: exported by the local frontend and mocker workers, checked by a scrape in "
            "`tests/dynamo/`; the others come from real vLLM/SGLang workers.", "",
            "| metric | type | exported by | meaning | live |", "| --- | --- | --- | --- | --- |"]
    for m in DYNAMO_METRICS:
        out.append(f"| `{m.name}` | {m.type} | {m.exporter} | {_cell(m.meaning)} | {'yes' if m.live else '-'} |")
    components = [("Adapter controller (`dynamo-scaling adapter`, `--metrics-port`)", AdapterMetrics()),
                  ("Metrics server (`dynamo-scaling metrics-server`, `/metrics` on its ports)",
                   ServerMetrics(Cache(list(DEFAULT_SIGNALS), 30.0))),
                  ("Planner (`dynamo-scaling planner`, `/metrics` on `--api-port`)", PlannerMetrics())]
    for title, metrics in components:
        _touch_labelled(metrics)
        out += ["", f"## {title}", "", "| metric | type | labels | meaning |", "| --- | --- | --- | --- |",
                *_registry_rows(metrics.registry)]
    tail = _hand_written()
    return "\n".join(out) + "\n" + (f"\n{tail}" if tail else "")


if __name__ == "__main__":
    sys.stdout.write(render())
