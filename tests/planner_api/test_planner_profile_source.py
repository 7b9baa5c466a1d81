"""Where the planner's performance profile comes from, in its status, metrics and log: without a
profile file it fits one online ("online-fit": a warning, the fit's state in its status); with
`profile_file: bundled` it sizes with the bundled mocker profile ("bundled"); with a profile
file, "file"."""

from __future__ import annotations

import httpx
import pytest
from planner_process import REPO, PlannerProcess

from devcluster.procs import free_port

pytestmark = pytest.mark.cluster
TOKEN = "profile-source-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROFILE = REPO / "examples" / "planner" / "profile-llama3.1-8b-h200.json"
SOURCES = ("online-fit", "bundled", "file")
WARNINGS = {"online-fit": "no performance profile given: the planner fits one online",
            "bundled": "sizing with the bundled profile of Dynamo's mocker worker"}


@pytest.mark.parametrize("source", SOURCES)
def test_planner_reports_where_its_profile_came_from(cluster, namespace, tmp_path, source):
    (tmp_path / "token").write_text(TOKEN)
    # no Prometheus: where the profile came from is known before the first observation
    planner = PlannerProcess(cluster.kubeconfig, namespace, f"http://127.0.0.1:{free_port()}", tmp_path,
                             token_file=tmp_path / "token", tls="off")
    if source == "file":
        planner.cfg["profile_file"] = str(PROFILE)
    elif source == "online-fit":
        del planner.cfg["profile_file"]  # the helper asks for the bundled one by default
    else:
        planner.cfg["profile_file"] = "bundled"
    planner.start()
    try:
        status = httpx.get(planner.url + "/v1/status", headers=AUTH, timeout=5).json()
        assert status["profile_source"] == source
        if source == "online-fit":
            # no observation yet (Prometheus is not there): nothing fitted, nothing trusted
            assert status["profile_fit"]["windows"] == 0 and status["profile_fit"]["trusted"] is False, status
        else:
            assert status["profile_fit"] is None, status
        # the what-if replays with the planner's profile: none yet is a conflict, said as such
        r = httpx.post(planner.url + "/v1/what-if", json={}, headers=AUTH, timeout=30)
        if source == "online-fit":
            assert r.status_code == 409, r.text
            assert r.json()["error"] == "no performance profile yet: the online fit is not trusted (0 windows)"
        else:  # it goes on (and fails later: Prometheus is not there, or the replay engine is missing)
            assert r.status_code != 409, r.text
        metrics = httpx.get(planner.url + "/metrics", timeout=5).text
        assert f'dynamo_planner_profile_info{{source="{source}"}} 1.0' in metrics
        for other in set(SOURCES) - {source}:
            assert f'dynamo_planner_profile_info{{source="{other}"}}' not in metrics
        log = (tmp_path / "planner.log").read_text()
        for kind, text in WARNINGS.items():
            assert (text in log) == (kind == source), (kind, log[-2000:])
    finally:
        planner.stop()
