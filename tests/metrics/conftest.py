"""Fixtures for the metrics tests: a real Prometheus (devcluster.prometheus) and small exporter
processes serving Dynamo-named series with values the test chooses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import Exporter



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
