"""The adapter's settings: flags win over the environment, which wins over the config file; a bad
value names the flag, variable or file key it came from; --help never reads the environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.cli import settings_from_args
from adapter.settings import SettingsError
from dynamo_scaling.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def settings(*argv: str):
    return settings_from_args(build_parser().parse_args(["adapter", *argv]))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("DYNAMO_ADAPTER_"):
            monkeypatch.delenv(k)


def test_defaults():
    s = settings()
    assert (s.metrics_port, s.health_port, s.resync_period, s.namespaces, s.leader_election) == (
        8080, 8081, 10.0, [], False)
    assert s.identity  # <hostname>-<pid>


def test_flag_beats_env_beats_file(monkeypatch, tmp_path):
    f = tmp_path / "adapter.yaml"
    f.write_text("metrics_port: 9001\nhealth_port: 9002\nresync_period: 3\n")
    monkeypatch.setenv("DYNAMO_ADAPTER_CONFIG_FILE", str(f))
    monkeypatch.setenv("DYNAMO_ADAPTER_HEALTH_PORT", "9102")
    monkeypatch.setenv("DYNAMO_ADAPTER_RESYNC_PERIOD", "4")
    s = settings("--resync-period", "5")
    assert (s.metrics_port, s.health_port, s.resync_period) == (9001, 9102, 5.0)


def test_json_file_and_lists(monkeypatch, tmp_path):
    f = tmp_path / "adapter.json"
    f.write_text(json.dumps({"namespace": ["a", "b"], "webhook_exempt_users": ["u1"], "leader_election": True}))
    s = settings("--config-file", str(f))
    assert (s.namespaces, s.webhook_exempt_users, s.leader_election) == (["a", "b"], ["u1"], True)
    monkeypatch.setenv("DYNAMO_ADAPTER_NAMESPACE", "x, y")
    monkeypatch.setenv("DYNAMO_ADAPTER_WEBHOOK_EXEMPT_USERS", "u2,u3")
    s = settings("--config-file", str(f))
    assert (s.namespaces, s.webhook_exempt_users) == (["x", "y"], ["u2", "u3"])
    assert settings("--config-file", str(f), "--namespace", "z", "--namespace", "w").namespaces == ["z", "w"]
    assert settings("--config-file", str(f), "--all-namespaces").namespaces == []


@pytest.mark.parametrize("env, argv, named", [
    ({"DYNAMO_ADAPTER_METRICS_PORT": "abc"}, (), "DYNAMO_ADAPTER_METRICS_PORT"),
    ({"DYNAMO_ADAPTER_LEADER_ELECTION": "maybe"}, (), "DYNAMO_ADAPTER_LEADER_ELECTION"),
    ({}, ("--health-port", "70000"), "--health-port"),
    ({"DYNAMO_ADAPTER_HEALTH_PORT": "70000"}, (), "DYNAMO_ADAPTER_HEALTH_PORT"),
    ({}, ("--resync-period", "0"), "--resync-period"),
    ({}, ("--identity", "x" * 101), "--identity"),
    ({}, ("--webhook-port", "9443"), "--webhook-cert-file"),
    ({}, ("--leader-election-retry-period", "20"), "leader election needs"),
    ({}, ("--namespace", "a", "--all-namespaces"), "contradict"),
])
def test_bad_values_are_named(monkeypatch, env, argv, named):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=named):
        settings(*argv)


def test_bad_file_key_named(tmp_path):
    f = tmp_path / "adapter.yaml"
    f.write_text("metrics_port: abc\nresync_perod: 3\n")
    with pytest.raises(SettingsError) as err:
        settings("--config-file", str(f))
    assert f"metrics_port in {f}" in str(err.value) and "unknown setting 'resync_perod'" in str(err.value)


def test_help_works_with_bad_env_and_run_exits_2():
    env = {"PATH": "/usr/bin:/bin", "DYNAMO_ADAPTER_METRICS_PORT": "abc"}
    help_ = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "adapter", "--help"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert help_.returncode == 0 and "--metrics-port" in help_.stdout, help_.stderr
    top = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert top.returncode == 0 and "adapter" in top.stdout, top.stderr
    run = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "adapter"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert "DYNAMO_ADAPTER_METRICS_PORT" in run.stderr and "'abc'" in run.stderr and "Traceback" not in run.stderr


# -- the planner's command line uses the same machinery -----------------------------------------

def planner_settings(*argv: str):
    from scaler.service.cli import settings_from_args as planner_from_args

    return planner_from_args(build_parser().parse_args(["planner", *argv]))


def test_planner_flags_env_and_bad_values(monkeypatch):
    for k in [k for k in __import__("os").environ if k.startswith("DYNAMO_PLANNER_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("DYNAMO_PLANNER_API_PORT", "9000")
    monkeypatch.setenv("DYNAMO_PLANNER_TOKEN_AUDIENCE", "a,b")
    # variables the config file reads (Prometheus connection, secrets) are not the CLI's business
    monkeypatch.setenv("DYNAMO_PLANNER_PROMETHEUS_USERNAME", "u")
    monkeypatch.setenv("DYNAMO_PLANNER_STATIC_TOKEN", "t")
    s = planner_settings("--config", "c.yaml", "--tls-san", "x", "--tls-san", "y")
    assert (s.api_port, s.token_audience, s.tls_sans, s.max_body_bytes) == (9000, ["a", "b"], ["x", "y"], 65536)
    assert planner_settings("--config", "c.yaml", "--api-port", "9001").api_port == 9001
    monkeypatch.setenv("DYNAMO_PLANNER_API_PORT", "abc")
    with pytest.raises(SettingsError, match="DYNAMO_PLANNER_API_PORT"):
        planner_settings("--config", "c.yaml")
    with pytest.raises(SettingsError, match="--max-body-bytes"):
        planner_settings("--config", "c.yaml", "--api-port", "1", "--max-body-bytes", "10")
    with pytest.raises(SettingsError, match="--config is required"):
        planner_settings("--api-port", "1")


def test_planner_help_works_with_bad_env():
    env = {"PATH": "/usr/bin:/bin", "DYNAMO_PLANNER_API_PORT": "abc", "DYNAMO_PLANNER_MAX_BODY_BYTES": "x"}
    out = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "planner", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "--api-port" in out.stdout, out.stderr
    run = subprocess.run([sys.executable, "-m", "dynamo_scaling.cli", "planner", "--config", "x.yaml"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2 and "DYNAMO_PLANNER_API_PORT" in run.stderr and "Traceback" not in run.stderr
