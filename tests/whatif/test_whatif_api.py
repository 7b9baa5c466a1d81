"""`POST /v1/what-if` on a real `dynamo-scaling planner` process over real HTTPS, with real
TokenReview/SubjectAccessReview, reading recorded frontend series from a real Prometheus: read
access is enough, the body is validated naming the field, one what-if runs at a time, the
current settings are the planner's live ones, and without the replay engine the answer is 501.
In fleet mode each planned DGD has its own `POST /v1/deployments/{namespace}/{name}/what-if`,
authorized for that DGD, answering what `dynamo-scaling what-if` and `dynamo-scaling replay` say
of the same window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import IMPORT_BLOCKER, WHAT_IF_SAME, assert_same_what_if, wait_for
from recorded import recorded_prometheus

from dynamo_scaling.traces import read_trace, window

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "planner_api"))
from leader_support import dgd
from planner_process import PlannerProcess  # noqa: E402

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 1200.0


def planner_role(name: str, verbs: list[str], names: tuple[str, ...] | None = ("llama",)) -> dict:
    """A Role on the planner of the DGDs `names` (None: of every DGD in the namespace)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": [{"apiGroups": ["scaling.dynamo-scaling.io"], "resources": ["planners"], "verbs": verbs,
                       **({"resourceNames": list(names)} if names else {})}]}


def binding(role: str, sa: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": f"{role}-{sa}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa}]}


@pytest.fixture()
def recorded(namespace, tmp_path):
    """Twenty minutes of the Azure code trace through the frontends of DGD `llama` in the test's
    namespace, ending just now (and some of it through another DGD's frontend)."""
    reqs = window(read_trace(REPO / "traces" / "azure_llm_2023_code.csv"), 0, WINDOW_S)
    with recorded_prometheus(tmp_path / "recorded", namespace, reqs, time.time() - 30, WINDOW_S) as prom:
        yield prom, reqs


def test_what_if_needs_read_access_validates_the_body_and_runs_one_at_a_time(cluster, kubectl, namespace,
                                                                             recorded, tmp_path):
    prom, reqs = recorded
    callers = ("operator", "viewer", "stranger")
    kubectl.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}} for sa in callers]
                  + [planner_role("llama-edit", ["get", "update"]), binding("llama-edit", "operator"),
                     planner_role("llama-view", ["get"]), binding("llama-view", "viewer")], namespace)
    auth = {sa: {"Authorization": "Bearer " + kubectl("-n", namespace, "create", "token", sa, "--duration=10m").strip()}
            for sa in callers}
    planner = PlannerProcess(cluster.kubeconfig, namespace, prom.url, tmp_path / "planner").start()
    try:
        def post(who: str | None, body: dict) -> httpx.Response:
            return httpx.post(planner.url + "/v1/what-if", json=body, headers=auth[who] if who else {},
                              timeout=300, verify=planner.verify)

        assert post(None, {}).status_code == 401
        r = post("stranger", {})
        assert r.status_code == 403 and "may not get planners" in r.json()["error"], r.text
        for body, field in (({"sla": {"ttft_ms": -1, "itl_ms": 50}}, "sla.ttft_ms"),
                            ({"sla": {"ttft_ms": 300}}, "sla.itl_ms"),
                            ({"overrides": {"gateway": {"replicas": 2}}}, "overrides.gateway"),
                            ({"overrides": {"decode": {}}}, "overrides.decode"),
                            ({"overrides": {"decode": {"min_replicas": 5, "max_replicas": 2}}}, "overrides.decode"),
                            ({"window_s": 10}, "window_s"),
                            ({"windows": 600}, "windows")):
            r = post("viewer", body)
            assert r.status_code == 422 and r.json()["error"].startswith(f"{field}:"), (body, r.text)

        # the live settings are the current ones: an override set through the API is in them
        r = httpx.put(planner.url + "/v1/overrides/prefill", json={"replicas": 2, "reason": "what-if test"},
                      headers=auth["operator"], timeout=30, verify=planner.verify)
        assert r.status_code == 200, r.text

        proposal = {"sla": {"ttft_ms": 150, "itl_ms": 50}, "overrides": {"decode": {"replicas": 3}},
                    "window_s": WINDOW_S}
        # two at once: one runs, the other is told to come back
        start, answers = threading.Barrier(2), []

        def ask() -> None:
            start.wait()
            answers.append(post("viewer", proposal))

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert sorted(a.status_code for a in answers) == [200, 429], [a.text[:300] for a in answers]
        busy = next(a for a in answers if a.status_code == 429)
        assert "already running" in busy.json()["error"] and busy.headers.get("retry-after")

        # and once it has finished the next one runs
        r = post("viewer", proposal)
        assert r.status_code == 200, r.text
        answer = r.json()
        cur, new = answer["current"]["settings"], answer["proposed"]["settings"]
        assert cur["ttft_ms"] == 500 and new["ttft_ms"] == 150
        assert cur["pools"] == {"prefill": {"min": 2, "max": 2}, "decode": {"min": 1, "max": 64}}
        assert new["pools"] == {"prefill": {"min": 2, "max": 2}, "decode": {"min": 3, "max": 3}}
        assert answer["proposed"]["max_gpus"] == 5 and answer["proposed"]["scale_events"] == 0
        # the DGD's own requests of the window (the recording started shortly before it); Prometheus
        # extrapolates increase() to the edges of each step, a few percent either way, while the other
        # DGD's frontend in the namespace would add a third
        assert 0.9 * len(reqs) <= answer["requests"] <= 1.06 * len(reqs)
        assert answer["difference"]["gpu_hours"] == pytest.approx(
            answer["proposed"]["gpu_hours"] - answer["current"]["gpu_hours"])
        assert answer["timings"]["total_seconds"] > 0 and answer["window"]["seconds"] == WINDOW_S
    finally:
        planner.stop()


# the packaging test's import blocker: these top-level modules raise ModuleNotFoundError
BLOCKER = IMPORT_BLOCKER + """
from dynamo_scaling.cli import main
sys.exit(main(sys.argv[2:]))
"""


class PlannerWithoutReplay(PlannerProcess):
    """The planner as the image runs it: Dynamo's replay engine (`dynamo`) cannot be imported."""

    def start(self) -> PlannerWithoutReplay:
        import yaml

        (self.workdir / "planner.yaml").write_text(yaml.safe_dump(self.cfg))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DYNAMO_PLANNER_")}
        with open(self.workdir / "planner.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BLOCKER, "dynamo,rich,matplotlib", "planner", "--config",
                 str(self.workdir / "planner.yaml"), *self.args, "--api-port", str(self.port),
                 "--static-token-file", str(self.token_file)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        wait_for(self._up, timeout=30, what="planner API")
        return self


def test_without_the_replay_engine_the_answer_is_501_with_the_install_command(cluster, namespace, prometheus,
                                                                              tmp_path):
    token = "what-if-test-token-0123456789"
    (tmp_path / "token").write_text(token)
    planner = PlannerWithoutReplay(cluster.kubeconfig, namespace, prometheus.url, tmp_path,
                                   token_file=tmp_path / "token").start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.post(planner.url + "/v1/what-if", json={"overrides": {"decode": {"replicas": 2}}},
                       headers=headers, timeout=30, verify=planner.verify)
        assert r.status_code == 501, r.text
        assert "pip install 'dynamo-scaling[replay]'" in r.json()["error"]
        # the body is still checked first, and a caller still needs a token
        r = httpx.post(planner.url + "/v1/what-if", json={"sla": {"ttft_ms": 0, "itl_ms": 1}}, headers=headers,
                       timeout=30, verify=planner.verify)
        assert r.status_code == 422 and "sla.ttft_ms" in r.json()["error"], r.text
        assert httpx.post(planner.url + "/v1/what-if", json={}, timeout=30,
                          verify=planner.verify).status_code == 401
    finally:
        planner.stop()




def cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_fleet_what_if_per_dgd_is_authorized_for_that_dgd_and_answers_as_what_if_and_replay(
        cluster, kubectl, namespace, recorded, tmp_path):
    prom, reqs = recorded
    callers = ("team-viewer", "llama-viewer", "stranger")
    # both DGDs of the recording, each planned by its policy; pools found by subComponentType
    kubectl.apply([dgd("llama"), dgd("other")], namespace)
    kubectl.apply([{"apiVersion": "scaling.dynamo-scaling.io/v1alpha1", "kind": "DynamoScalingPolicy",
                    "metadata": {"name": n}, "spec": {"dgdRef": {"name": n}, "sla": {"ttftMs": 500, "itlMs": 50}}}
                   for n in ("llama", "other")], namespace)
    kubectl.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}} for sa in callers]
                  + [planner_role("team-view", ["get"], None), binding("team-view", "team-viewer"),
                     planner_role("llama-view", ["get"]), binding("llama-view", "llama-viewer")], namespace)
    auth = {sa: {"Authorization": "Bearer " + kubectl("-n", namespace, "create", "token", sa, "--duration=10m").strip()}
            for sa in callers}
    planner = PlannerProcess(cluster.kubeconfig, namespace, prom.url, tmp_path / "planner",
                             config={"fleet": {"namespaces": [namespace], "resync_s": 1}})
    planner.cfg["planner"] = {}  # the planner's defaults, which `dynamo-scaling replay` plans with too
    planner.start()
    try:
        def post(path: str, who: str | None, body: dict) -> httpx.Response:
            return httpx.post(planner.url + path, json=body, headers=auth[who] if who else {}, timeout=300,
                              verify=planner.verify)

        llama, other = (f"/v1/deployments/{namespace}/{n}/what-if" for n in ("llama", "other"))
        wait_for(lambda: [i["name"] for i in httpx.get(planner.url + "/v1/deployments", headers=auth["team-viewer"],
                                                       timeout=10, verify=planner.verify).json()["items"]]
                 == ["llama", "other"], timeout=60, what="both DGDs planned")
        # authorized for that DGD, before anything says whether it is planned
        assert post(llama, None, {}).status_code == 401
        r = post(llama, "stranger", {})
        assert r.status_code == 403 and "may not get planners" in r.json()["error"], r.text
        r = post(other, "llama-viewer", {})
        assert r.status_code == 403 and "'other'" in r.json()["error"], r.text
        r = post(f"/v1/deployments/{namespace}/nope/what-if", "team-viewer", {})
        assert r.status_code == 404 and f"DynamoGraphDeployment {namespace}/nope" in r.json()["error"], r.text
        r = post(llama, "llama-viewer", {"sla": {"ttft_ms": -1, "itl_ms": 50}})
        assert r.status_code == 422 and r.json()["error"].startswith("sla.ttft_ms:"), r.text
        # the single-DGD route grants nothing in fleet mode
        r = post("/v1/what-if", "team-viewer", {})
        assert r.status_code == 403 and "/v1/deployments/" in r.json()["error"], r.text

        r = post(llama, "llama-viewer", {"sla": {"ttft_ms": 150, "itl_ms": 50}, "window_s": WINDOW_S})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["deployment"] == {"namespace": namespace, "name": "llama"}
        # llama's own requests, not the other DGD's (a third of them)
        assert 0.9 * len(reqs) <= answer["requests"] <= 1.06 * len(reqs)  # increase() extrapolation, as above

        # the same window, settings and proposal from the command line: the same answer ...
        out, trace = tmp_path / "cli.json", tmp_path / "trace.jsonl"
        cli("what-if", "--config", str(tmp_path / "planner" / "planner.yaml"), "--prometheus-url", prom.url,
            "--namespace", namespace, "--dgd", "llama", "--window", f"{WINDOW_S:.0f}", "--end", answer["window"]["end"],
            "--ttft-ms", "150", "--json", str(out), "--trace-out", str(trace))
        assert_same_what_if(answer, json.loads(out.read_text()))
        # ... and what replay says of the rebuilt trace under the settings in effect
        cli("replay", "--trace", str(trace), "--planner", "predictive", "--json", str(tmp_path / "replay.json"))
        replayed = json.loads((tmp_path / "replay.json").read_text())
        for key in WHAT_IF_SAME:
            assert answer["current"][key] == replayed[key], key
    finally:
        planner.stop()
