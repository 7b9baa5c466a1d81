"""A second, throw-away control plane: up, reuse, status, down, and nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devcluster import controlplane
from devcluster.procs import alive

pytestmark = pytest.mark.cluster


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ})


def test_up_reuse_status_down_leaves_nothing(tmp_path, cluster):
    state_dir = tmp_path / "plane"
    up = _cli("devcluster", "--state-dir", str(state_dir), "up", "--hpa-sync-period", "2")
    assert up.returncode == 0, up.stderr
    last = up.stdout.strip().splitlines()[-1]
    assert last == f"export KUBECONFIG={state_dir / 'admin.kubeconfig'}"
    state = controlplane.load_state(state_dir)
    pids = dict(state.pids)
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(alive(p) for p in pids.values())

    again = _cli("devcluster", "--state-dir", str(state_dir), "up")
    assert again.returncode == 0 and controlplane.load_state(state_dir).pids == pids  # reused

    status = _cli("devcluster", "--state-dir", str(state_dir), "status")
    st = json.loads(status.stdout)
    assert status.returncode == 0 and st["running"] is True and st["kubernetes_version"].startswith("v1.")

    down = _cli("devcluster", "--state-dir", str(state_dir), "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not any(alive(p) for p in pids.values())
    assert not state_dir.exists()
    gone = _cli("devcluster", "--state-dir", str(state_dir), "status")
    assert gone.returncode == 1 and json.loads(gone.stdout) == {"running": False}


def test_bad_flag_is_refused(tmp_path):
    res = _cli("devcluster", "--state-dir", str(tmp_path / "x"), "up", "--hpa-sync-period", "0")
    assert res.returncode == 2 and "--hpa-sync-period" in res.stderr
    assert not (tmp_path / "x").exists()
