"""Packaging matches what runs: the services need only the base dependencies, every declared
dependency is imported by something, and the image's lock pins exactly the base set."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from helpers import IMPORT_BLOCKER
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SERVICE_PACKAGES = ("adapter", "external_metrics", "scaler/service", "scaler/control", "scaler/planner",
                    "scaler/algorithms")
# Modules the base install must not need: extras, test tools and the local cluster.
NOT_IN_IMAGE = ("rich", "matplotlib", "dynamo", "devcluster", "pytest", "grpc_tools", "gjson")
# Declared for a library that loads them itself: uvicorn picks httptools when it is installed,
# pytest loads pytest-asyncio as a plugin.
LOADED_BY_OTHERS = {"httptools", "pytest-asyncio"}


def _service_modules() -> list[str]:
    mods = []
    for pkg in SERVICE_PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            if rel.name == "__init__":
                rel = rel.parent
            if rel.as_posix() == "external_metrics/proto/generate":
                continue  # regenerates the gRPC stubs at development time (needs grpc_tools)
            mods.append(".".join(rel.parts))
    return mods


def _run_without_extras(body: str) -> subprocess.CompletedProcess[str]:
    code = IMPORT_BLOCKER + body
    return subprocess.run([sys.executable, "-c", code, ",".join(NOT_IN_IMAGE)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_services_import_and_start_with_base_dependencies_only():
    mods = _service_modules()
    assert len(mods) > 30
    proc = _run_without_extras(
        "import importlib\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "from dynamo_scaling.cli import main\n"
        "for cmd in ('adapter', 'metrics-server', 'planner'):\n"
        "    try:\n"
        "        main([cmd, '--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (cmd, exc.code)\n"
        "print('ok')\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_optional_commands_say_what_to_install_when_extras_are_missing():
    proc = _run_without_extras(
        "from dynamo_scaling.cli import main\n"
        "import sys\n"
        "sys.exit(main(['demo']))\n")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "dynamo-scaling[replay]" in proc.stderr
    assert "demo" in proc.stderr


def _imported_top_levels() -> set[str]:
    tops: set[str] = set()
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops.add(node.module.split(".")[0])
    return tops


def _declared() -> list[Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs.extend(Requirement(r) for r in extra)
    return [r for r in reqs if canonicalize_name(r.name) != "dynamo-scaling"]


def test_every_declared_dependency_is_imported():
    dists_of = packages_distributions()
    imported = {canonicalize_name(d) for top in _imported_top_levels() for d in dists_of.get(top, [])}
    unused = [r.name for r in _declared()
              if canonicalize_name(r.name) not in imported and r.name not in LOADED_BY_OTHERS]
    assert not unused, f"declared but imported nowhere: {unused}"


def test_image_lock_pins_every_base_dependency_within_its_range():
    lock = REPO / "requirements" / "image.txt"
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.split()[0]
    for req in (Requirement(r) for r in PYPROJECT["project"]["dependencies"]):
        name = canonicalize_name(req.name)
        assert name in pins, f"requirements/image.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements/image.txt pins {req.name}=={pins[name]}, outside {req.specifier}")
    extras_only = {canonicalize_name(r) for r in ("ai-dynamo-runtime", "rich", "matplotlib", "pytest")}
    assert not extras_only & pins.keys(), "the image lock must not carry replay or test dependencies"
