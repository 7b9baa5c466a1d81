"""Fixtures for tests against live Dynamo processes behind the stand-in operator."""

from __future__ import annotations

import importlib.util

import pytest

from standin_process import DynamoStandin


@pytest.fixture()
def live_dynamo(cluster, kubectl, namespace, prometheus, tmp_path):
    """The stand-in operator in dynamo mode for the test's namespace, scraped by `prometheus`."""
    if importlib.util.find_spec("dynamo.frontend") is None:
        pytest.fail("Dynamo's frontend is not installed: run devcluster/dynamo/install.sh")
    standin = DynamoStandin(cluster, namespace, tmp_path / "standin",
                            prometheus.sd_dir / f"standin-{namespace}.json").start()
    yield standin
    standin.stop()
