"""Generate the configuration reference (docs/configuration.md) from the pydantic models, so
the docs cannot drift from the code: `python -m devtools.config_docs > docs/configuration.md`."""

from __future__ import annotations

import sys

from pydantic import BaseModel

from adapter.settings import Settings as AdapterSettings
from scaler.control.state import Override, SLATargets
from scaler.service.cli import PlannerSettings
from scaler.service.config import DeploymentRef, MetricLabels, ServiceConfig
from scaler.planner.config import PlannerConfig

SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("Planner config file (`dynamo-scaling planner --config FILE`)", ServiceConfig, ""),
    ("`deployment`", DeploymentRef, "deployment."),
    ("`planner`", PlannerConfig, "planner."),
    ("`labels`", MetricLabels, "labels."),
    ("Override body (`PUT /v1/overrides/{service}`)", Override, ""),
    ("SLA body (`PUT /v1/sla`)", SLATargets, ""),
    ("`dynamo-scaling adapter` (flag `--<field>`, env `DYNAMO_ADAPTER_<FIELD>`, or a key of `--config-file`)",
     AdapterSettings, ""),
    ("`dynamo-scaling planner` (flag `--<field>`, env `DYNAMO_PLANNER_<FIELD>`)", PlannerSettings, ""),
]


def _type(field) -> str:
    ann = field.annotation
    name = getattr(ann, "__name__", None) or str(ann)
    return str(name).replace("typing.", "").replace("pathlib.", "").replace("|", "\\|")


def render() -> str:
    out = ["# Configuration reference", "",
           "Generated from the code by `python -m devtools.config_docs`; do not edit by hand.", ""]
    for title, model, prefix in SECTIONS:
        out += [f"## {title}", "", "| field | type | default | description |", "|---|---|---|---|"]
        for name, f in model.model_fields.items():
            default = "required" if f.is_required() else (
                "(computed)" if f.default_factory is not None else repr(f.default))
            out.append(f"| `{prefix}{f.alias or name}` | `{_type(f)}` | {default} | {f.description or ''} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
