"""The optional environment of Dynamo's own planner (benchmarks/dynamo_planner) covers what that
planner imports: a module it loads that is neither in our environment, nor stood in for by the
stubs, nor checked by `baseline.missing()` would let the benchmark register `dynamo-own-*` and
then fail half way through a run. Read from Dynamo's installed source, nothing imported."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from benchmarks.dynamo_planner import baseline



def _dynamo_dir() -> Path | None:
    """The installed `dynamo` package that holds the planner (a namespace: other parts may be found first)."""
    spec = importlib.util.find_spec("dynamo")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "planner").is_dir():
            return Path(location)
    return None


DYNAMO = _dynamo_dir()


def _loaded_imports() -> dict[str, str]:
    """Top-level third-party modules imported at module level by dynamo.planner and dynamo.replay
    (their tests and examples left out), each with one file that imports it."""
    out: dict[str, str] = {}
    for package in ("planner", "replay"):
        for path in sorted((DYNAMO / package).rglob("*.py")):
            parts = path.relative_to(DYNAMO).parts
            if "tests" in parts or "examples" in parts:
                continue
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top != "dynamo" and top not in sys.stdlib_module_names:
                        out.setdefault(top, "/".join(parts))
    return out


@pytest.mark.skipif(DYNAMO is None,
                    reason="ai-dynamo is not installed (devcluster/dynamo/install.sh)")
def test_every_module_dynamo_planner_loads_is_installed_stubbed_or_checked():
    stubbed = {p.name.removesuffix(".py") for p in baseline.STUBS.iterdir()}
    checked = {name.split(".")[0] for name in baseline.NEEDED}
    loaded = _loaded_imports()
    assert "pandas" in loaded and "aisimulate" in loaded  # the scan sees the planner's imports
    uncovered = {m: f for m, f in loaded.items()
                 if m not in stubbed and m not in checked and importlib.util.find_spec(m) is None}
    assert not uncovered, (f"imported by Dynamo's planner but neither installed, stubbed nor in baseline.NEEDED "
                           f"(add them there and to {baseline.REQUIREMENTS.name}): {uncovered}")
