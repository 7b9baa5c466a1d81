"""Fixtures for the metrics tests: a real Prometheus (devcluster.prometheus) and small exporter
processes serving Dynamo-named series with values the test chooses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.procs import free_port
from devcluster.prometheus import Prometheus

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if "prometheus" in getattr(item, "fixturenames", ()) and not shutil.which("prometheus"):
            item.add_marker(pytest.mark.skip(reason="prometheus binary not installed"))


class Exporter:
    """An exporter process on 127.0.0.1 whose series are rewritten with `set()`."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.state = workdir / f"exporter-{id(self)}.json"
        self.port = free_port()
        self.set([])
        self.proc = subprocess.Popen([sys.executable, str(HERE / "exporter.py"), str(self.port), str(self.state)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.address}/metrics", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("exporter exited")
                time.sleep(0.1)
        raise TimeoutError("exporter did not start")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, series: list[dict]) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"series": series}))
        os.replace(tmp, self.state)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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


@pytest.fixture()
def prometheus(tmp_path) -> Iterator[Prometheus]:
    """A fresh real Prometheus (1 s scrape interval) for one test."""
    with Prometheus(tmp_path / "prometheus", scrape_interval_s=1.0) as prom:
        yield prom
