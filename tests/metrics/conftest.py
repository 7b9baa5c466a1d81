"""Fixtures for the metrics tests: a real Prometheus (devcluster.prometheus) and small exporter
processes serving Dynamo-named series with values the test chooses."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Exporter

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in item.path.parents and not shutil.which("prometheus") \
                and {"prometheus", "deployment"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.skip(reason="prometheus binary not installed"))


@pytest.fixture()
def exporters(tmp_path) -> Iterator:
    """Factory: `exporters()` starts one more exporter; all are stopped at the end."""
    started: list[Exporter] = []

    def make() -> Exporter:
        e = Exporter(tmp_path / "exporters")
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()
