"""Generated docs stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from devtools.config_docs import render

REPO = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current():
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render(), "run: python -m devtools.config_docs > docs/configuration.md"


def test_cli_help_lists_subcommands_and_version():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "--help"], capture_output=True, text=True).stdout
    for cmd in ("demo", "planner", "devcluster"):
        assert cmd in out
    ver = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "--version"], capture_output=True, text=True)
    assert ver.stdout.startswith("dynamo-scaling ") and ver.returncode == 0


def test_metrics_reference_is_current():
    from devtools.metrics_docs import render as render_metrics

    committed = (REPO / "docs" / "metrics.md").read_text()
    assert committed == render_metrics(), "run: python -m devtools.metrics_docs > docs/metrics.md"
