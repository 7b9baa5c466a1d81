"""Without a performance profile the planner sizes with the bundled mocker profile and says so (a
warning, profile_source "bundled" in its status and metrics); with one it reports "file". Nothing
is fitted online (helm values.yaml planner.profile)."""

from __future__ import annotations

import httpx
import pytest
from planner_process import REPO, PlannerProcess

from devcluster.procs import free_port

pytestmark = pytest.mark.cluster
TOKEN = "profile-source-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROFILE = REPO / "examples" / "planner" / "profile-llama3.1-8b-h200.json"


@pytest.mark.parametrize("source", ["bundled", "file"])
def test_planner_reports_where_its_profile_came_from(cluster, namespace, tmp_path, source):
    (tmp_path / "token").write_text(TOKEN)
    # no Prometheus: where the profile came from is known before the first observation
    planner = PlannerProcess(cluster.kubeconfig, namespace, f"http://127.0.0.1:{free_port()}", tmp_path,
                             token_file=tmp_path / "token", tls="off")
    if source == "file":
        planner.cfg["profile_file"] = str(PROFILE)
    planner.start()
    try:
        status = httpx.get(planner.url + "/v1/status", headers=AUTH, timeout=5).json()
        assert status["profile_source"] == source
        metrics = httpx.get(planner.url + "/metrics", timeout=5).text
        assert f'dynamo_planner_profile_info{{source="{source}"}} 1.0' in metrics
        other = "file" if source == "bundled" else "bundled"
        assert f'dynamo_planner_profile_info{{source="{other}"}}' not in metrics
        log = (tmp_path / "planner.log").read_text()
        assert ("no performance profile given: sizing with the bundled profile" in log) == (source == "bundled")
    finally:
        planner.stop()
