"""The pydantic models in adapter/ and the CRD schemas in crds/ must describe the same fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from adapter import models

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _schema(filename: str) -> dict:
    crd = yaml.safe_load((CRDS / filename).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def _model_of(annotation):
    """The BaseModel inside an annotation like `X | None`, `dict[str, X]` or `list[X]`."""
    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in args:
        found = _model_of(a)
        if found:
            return found
    return None


def _compare(schema: dict, model: type[BaseModel], path: str, problems: list[str]) -> None:
    props = schema.get("properties", {})
    if not props and "additionalProperties" in schema:
        props = schema["additionalProperties"].get("properties", {})
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    for key, sub in props.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key not in fields:
            problems.append(f"{path}.{key}: in the CRD, not in {model.__name__}")
            continue
        field = fields[key]
        meta = {type(m).__name__: m for m in field.metadata}
        if "minimum" in sub:
            ge = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
            if ge != sub["minimum"]:
                problems.append(f"{path}.{key}: CRD minimum {sub['minimum']}, model ge={ge}")
        if sub.get("minLength") and not any(getattr(m, "min_length", None) == sub["minLength"] for m in field.metadata):
            problems.append(f"{path}.{key}: CRD minLength {sub['minLength']} not in model ({meta})")
        if "pattern" in sub and not any(getattr(m, "pattern", None) == sub["pattern"] for m in field.metadata):
            problems.append(f"{path}.{key}: CRD pattern differs from the model")
        inner = _model_of(field.annotation)
        if inner is not None:
            target = sub.get("items", sub)
            _compare(target, inner, f"{path}.{key}", problems)
    for key in fields:
        if key not in props and key not in ("apiVersion", "kind", "metadata"):
            problems.append(f"{path}.{key}: in {model.__name__}, not in the CRD")
    required = set(schema.get("required", []))
    model_required = {(f.alias or n) for n, f in model.model_fields.items() if f.is_required()}
    model_required -= {"apiVersion", "kind", "metadata"}
    if required != model_required and not (schema.get("type") == "object" and not required and not model_required):
        problems.append(f"{path}: CRD requires {sorted(required)}, model requires {sorted(model_required)}")


@pytest.mark.parametrize(
    ("filename", "model"),
    [
        ("nvidia.com_dynamographdeploymentscalingadapters.yaml", models.DGDSA),
        ("nvidia.com_dynamographdeployments.yaml", models.DGD),
    ],
)
def test_model_matches_crd(filename: str, model: type[BaseModel]) -> None:
    problems: list[str] = []
    _compare(_schema(filename), model, model.__name__, problems)
    assert problems == []


def test_comparison_detects_drift() -> None:
    """The comparison itself must fail when a field is missing on either side."""

    class Broken(BaseModel):
        replicas: int

    problems: list[str] = []
    _compare(_schema("nvidia.com_dynamographdeploymentscalingadapters.yaml")["properties"]["spec"],
             Broken, "spec", problems)
    assert any("dgdRef" in p for p in problems)
    assert any("minimum" in p for p in problems)


def test_adapter_naming_and_selector() -> None:
    assert models.adapter_name("llama", "VllmDecodeWorker") == "llama-vllmdecodeworker"
    assert models.pod_selector("llama", "Decode") == (
        "nvidia.com/dynamo-graph-deployment-name=llama,nvidia.com/dynamo-component=Decode")


def test_service_gpu_accounting() -> None:
    svc = models.ServiceSpec.model_validate(
        {"replicas": 2, "multinode": {"nodeCount": 2}, "resources": {"limits": {"gpu": "8"}}, "envs": []})
    assert svc.gpus_per_replica == 16 and svc.node_count == 2
    assert models.ServiceSpec.model_validate({}).effective_replicas == 1
    assert svc.model_dump(by_alias=True, exclude_none=True)["envs"] == []  # unknown fields kept
