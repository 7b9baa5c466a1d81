"""`dynamo-scaling devcluster demo` says what is missing instead of failing half-way; run live,
`--no-chaos` leaves every component alone, `--keep-cluster` leaves the control plane running, and
the summary table names each service with its scaler (the scenario's own assertions run in
tests/e2e/test_full_loop.py, through the same scenario module)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_live_demo_names_a_missing_prerequisite(tmp_path):
    # a PATH with python but without prometheus
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    assert shutil.which("prometheus", path=env["PATH"]) is None
    r = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "devcluster",
                        "--state-dir", str(tmp_path / "plane"), "demo"],
                       capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parents[2])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "prometheus" in r.stdout and "scripts/setup.sh --all" in r.stdout
    assert not (tmp_path / "plane").exists()  # nothing was started


def table_rows(out: str) -> dict[str, list[str]]:
    """Rows of the printed 'who scaled what' table, by service."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.replace("|", "│").split("│")[1:-1]]
        if len(cells) == 4 and "/" in cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.cluster
def test_live_demo_without_chaos_keeps_its_control_plane_and_says_who_scaled_what(tmp_path):
    """One live run for both options (the scenario takes about two minutes)."""
    from devcluster import controlplane, scenario

    state_dir = tmp_path / "plane"
    # TMPDIR: the demo's component logs land in the test's own directory
    env = {**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp_path)}
    try:
        r = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "devcluster",
                            "--state-dir", str(state_dir), "demo", "--no-chaos", "--keep-cluster"],
                           capture_output=True, text=True, timeout=900, env=env, cwd=Path(__file__).parents[2])
        out = r.stdout
        assert r.returncode == 0, out[-4000:] + r.stderr[-4000:]
        # --no-chaos: the timeline shows the load run through with no component killed or restarted
        assert f"{len(scenario.load_profile())} ok, 0 failed" in out, out[-4000:]
        assert "killed" not in out and "restarted" not in out, out
        # the table names each service with the scaler that drives it
        rows = table_rows(out)
        assert {svc: row[0] for svc, row in rows.items()} == {
            f"{dgd}/{svc}": actor for dgd, svc, actor in scenario.SCALED}, out[-3000:]
        assert rows["side/worker"][2] == "2" and int(rows["llm/decode"][1]) >= 2, rows
        # --keep-cluster: the control plane outlives the demo
        assert "control plane left running" in out
        state = controlplane.load_state(state_dir)
        assert state is not None and controlplane.healthy(state)
    finally:
        controlplane.down(state_dir)
    assert controlplane.load_state(state_dir) is None
