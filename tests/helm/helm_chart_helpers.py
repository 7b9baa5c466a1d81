"""Helpers for the chart tests (import as `from helm_chart_helpers import ...`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dynamo-scaling"
DATA = Path(__file__).resolve().parent / "data"


class Renderer:
    def __init__(self, helm):
        self.helm = helm

    def run(self, *args: str, release: str = "ds", namespace: str = "dynamo-scaling",
            values: list[Path] = (), sets: dict[str, str] | None = None, check: bool = True):
        cmd = ["template", release, str(CHART), "--namespace", namespace]
        for v in values:
            cmd += ["-f", str(v)]
        for k, v in (sets or {}).items():
            cmd += ["--set", f"{k}={v}"]
        return self.helm.run(*cmd, *args, check=check)

    def text(self, **kw) -> str:
        return self.run(**kw).stdout

    def docs(self, **kw) -> list[dict]:
        return [d for d in yaml.safe_load_all(self.text(**kw)) if d]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    hits = find(docs, kind, name)
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in hits]}"
    return hits[0]


def kubectl_dry_run(kubectl, manifest: str) -> subprocess.CompletedProcess:
    """Server-side dry run with strict field validation: the API server validates every object
    (schemas, CRD schemas, admission) and stores nothing."""
    return kubectl.run("apply", "--server-side", "--dry-run=server", "--validate=strict",
                       "--field-manager=helm-dry-run", "-f", "-", input=manifest, check=False)


def ensure_keda_crd(kubectl) -> None:
    """Apply the ScaledObject and TriggerAuthentication CRD stand-ins (tests/helm/data) unless
    KEDA's CRDs are already there."""
    if kubectl.run("get", "crd", "scaledobjects.keda.sh", "triggerauthentications.keda.sh", check=False).returncode:
        kubectl("apply", "--server-side", "--field-manager=dynamo-scaling-tests",
                "-f", str(DATA / "keda-scaledobject-crd.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/scaledobjects.keda.sh",
            "crd/triggerauthentications.keda.sh")
