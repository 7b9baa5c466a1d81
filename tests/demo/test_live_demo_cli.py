"""`dynamo-scaling demo --cluster` says what is missing instead of failing half-way (the live
loop itself runs in tests/e2e/test_full_loop.py, through the same scenario module)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_live_demo_names_a_missing_prerequisite(tmp_path):
    # a PATH with python but without prometheus
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    assert shutil.which("prometheus", path=env["PATH"]) is None
    r = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "demo", "--cluster",
                        "--state-dir", str(tmp_path / "plane")],
                       capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parents[2])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "prometheus" in r.stdout and "scripts/setup.sh --all" in r.stdout
    assert not (tmp_path / "plane").exists()  # nothing was started
