"""The import rules of docs/architecture.md, enforced: which package may import which, and that
decision logic imports no I/O library. A new edge needs a reason written into the table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = ("dynamo_scaling", "adapter", "external_metrics", "scaler", "devcluster", "devtools", "tests",
        "benchmarks")

# package -> the packages of ours it may import (besides itself). Longest prefix wins.
ALLOWED: dict[str, set[str]] = {
    "dynamo_scaling": set(),  # shared foundation: logging, Kubernetes client, trace files
    "scaler": set(),  # the package itself only groups the planner's parts
    "adapter": {"dynamo_scaling"},
    "external_metrics": {"dynamo_scaling"},
    "scaler.algorithms": set(),
    "scaler.policy": set(),
    "scaler.profile": set(),
    "scaler.planner": {"scaler.policy", "scaler.profile", "scaler.algorithms"},
    "scaler.control": {"dynamo_scaling", "scaler.planner", "scaler.policy"},
    # the planner service reads Prometheus through the metrics server's reader and scales through
    # the adapter's /scale client, so both sides agree on names and rules
    "scaler.service": {"dynamo_scaling", "adapter", "external_metrics", "scaler.control", "scaler.planner",
                    "scaler.policy", "scaler.profile", "scaler.algorithms",
                    "scaler.whatif"},  # registers POST /v1/what-if; the replay engine is imported only per call
    "scaler.replay": {"dynamo_scaling", "scaler.planner", "scaler.policy", "scaler.profile",
                      "scaler.algorithms"},
    "scaler.demo": {"dynamo_scaling", "scaler.replay", "scaler.planner", "scaler.policy", "scaler.profile"},
    # what-if: traffic from Prometheus through the metrics server's reader and signal mapping, replayed
    # under the API's SLA/override shapes (scaler.control) in the replay harness
    "scaler.whatif": {"dynamo_scaling", "external_metrics", "scaler.replay", "scaler.control", "scaler.planner",
                      "scaler.policy", "scaler.profile"},
    # development only (never in the image): may use everything above
    "devcluster": {"dynamo_scaling", "adapter", "external_metrics", "scaler"},
    "devtools": {"dynamo_scaling", "adapter", "external_metrics", "scaler", "devcluster"},
}
# The command line is the composition root: the one module that wires every component together.
COMPOSITION_ROOT = "dynamo_scaling.cli"
# Pure decision logic: replayable without a cluster, so no I/O library may creep in.
PURE = ("scaler.planner", "scaler.algorithms", "scaler.policy", "scaler.profile", "adapter.sync")
IO_LIBRARIES = {"kubernetes", "kubernetes_asyncio", "kopf", "httpx", "fastapi", "uvicorn", "grpc",
                "prometheus_client", "urllib", "socket", "subprocess", "requests", "aiohttp"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if name in OURS:  # `from scaler import demo` imports scaler.demo
                found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return found


def _unit(module: str) -> str | None:
    """The rule table's key that governs a module (longest matching prefix)."""
    keys = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    return max(keys, key=len) if keys else None


def _target_unit(name: str) -> str | None:
    if name.split(".")[0] not in OURS:
        return None
    unit = _unit(name)
    if unit is None:
        return name.split(".")[0] if name.split(".")[0] in ALLOWED or name in ("scaler",) else name
    return unit


def _allowed(src_unit: str, target_unit: str) -> bool:
    if src_unit == target_unit:
        return True
    return any(target_unit == a or target_unit.startswith(a + ".") for a in ALLOWED[src_unit])


def _sources() -> list[Path]:
    roots = [REPO / p for p in ALLOWED if "." not in p and (REPO / p).is_dir()]
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_every_source_package_has_a_rule():
    top_level = {p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top_level - {"tests", "benchmarks"} <= set(ALLOWED), (
        f"packages without an import rule: {sorted(top_level - {'tests', 'benchmarks'} - set(ALLOWED))}")
    scaler_parts = {p.stem for p in (REPO / "scaler").iterdir()
                    if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    missing = {f"scaler.{s}" for s in scaler_parts} - set(ALLOWED)
    assert not missing, f"scaler modules without an import rule: {sorted(missing)}"


def test_packages_import_only_what_their_rule_allows():
    violations = []
    for path in _sources():
        module = _module_name(path)
        if module == COMPOSITION_ROOT:
            continue
        src = _unit(module)
        assert src is not None, module
        for line, name in _imports(path):
            target = _target_unit(name)
            if target is None or target == "scaler":  # `import scaler.x` also names the parent
                continue
            if target in ("tests", "benchmarks") or not _allowed(src, target):
                violations.append(f"{path.relative_to(REPO)}:{line}: {src} imports {name}")
    assert not violations, "imports against docs/architecture.md:\n" + "\n".join(sorted(set(violations)))


@pytest.mark.parametrize("pure", PURE)
def test_decision_logic_imports_no_io_library(pure):
    base = REPO / Path(*pure.split("."))
    paths = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    assert paths and all(p.exists() for p in paths), pure
    bad = [f"{p.relative_to(REPO)}:{line}: {name}" for p in paths for line, name in _imports(p)
           if name.split(".")[0] in IO_LIBRARIES]
    assert not bad, f"{pure} must stay pure:\n" + "\n".join(bad)


def test_the_rule_checker_sees_a_back_edge(tmp_path):
    """The checker itself: a replay module importing the demo is reported."""
    fake = REPO / "scaler" / "replay" / "_rule_probe.py"
    assert _unit("scaler.replay._rule_probe") == "scaler.replay"
    assert not _allowed("scaler.replay", _target_unit("scaler.demo.report"))
    assert not _allowed("adapter", _target_unit("scaler.service.service"))
    assert _allowed("scaler.service", _target_unit("adapter.scale_client"))
    assert not fake.exists()


def test_every_package_says_what_it_is_for():
    roots = [REPO / p for p in ALLOWED if "." not in p and (REPO / p).is_dir()]
    missing = [str(init.relative_to(REPO)) for root in roots for init in sorted(root.rglob("__init__.py"))
               if "proto" not in init.parts and not ast.get_docstring(ast.parse(init.read_text()))]
    assert not missing, f"packages without a docstring: {missing}"
