"""A Prometheus exporter process for tests (tests/metrics/exporter.py on 127.0.0.1) that serves
the series last `set()`: Dynamo-named series with values a test chooses. Import as
`from exporter_process import Exporter`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from devcluster import procs
from devcluster.procs import free_port, poll_until

SCRIPT = Path(__file__).resolve().parent / "metrics" / "exporter.py"


class Exporter:
    """Serves the series last `set()` (a list of {"name", "labels", "value"}) on /metrics."""

    def __init__(self, workdir: Path, series: list[dict] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.state = workdir / f"exporter-{self.port}.json"
        self.set(list(series))
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), str(self.port), str(self.state)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        poll_until(self._serving, 15, "exporter serving", 0.1)

    def _serving(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("exporter exited")
        try:
            urllib.request.urlopen(f"http://{self.address}/metrics", timeout=1).read()
            return True
        except OSError:
            return False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, series: list[dict]) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"series": series}))
        os.replace(tmp, self.state)

    def stop(self) -> None:
        if self.proc.poll() is None:
            procs.stop(self.proc, 5)
