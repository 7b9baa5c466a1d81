"""A real Prometheus on 127.0.0.1 with file-based service discovery, for tests and the demo."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import yaml

from devcluster.procs import alive, free_port, spawn, terminate


class Prometheus:
    def __init__(self, workdir: Path, scrape_interval_s: float = 1.0, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.scrape_interval_s = scrape_interval_s
        self.port = port or free_port()
        self.pid: int | None = None
        self.sd_dir = self.workdir / "targets"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        cfg = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{
                "job_name": "dynamo",
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "file_sd_configs": [{"files": [str(self.sd_dir / "*.json")], "refresh_interval": "1s"}],
            }],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def set_targets(self, name: str, targets: list[tuple[str, dict[str, str]]]) -> None:
        """Publish scrape targets (host:port, labels) under `name`; replaces that group atomically."""
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        groups = [{"targets": [addr], "labels": labels} for addr, labels in targets]
        tmp = self.sd_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, self.sd_dir / f"{name}.json")

    def start(self, timeout_s: float = 30.0) -> "Prometheus":
        binary = shutil.which("prometheus")
        if not binary:
            raise RuntimeError("prometheus is not installed (Debian: apt-get install prometheus)")
        cfg = self._config()
        self.pid = spawn([binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir / 'data'}",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
                          "--log.level=warn"], self.workdir / "prometheus.log")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if not alive(self.pid):
                raise RuntimeError("prometheus exited: " + (self.workdir / "prometheus.log").read_text()[-2000:])
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready after {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.pid and alive(self.pid):
            terminate(self.pid)
        self.pid = None

    def __enter__(self) -> "Prometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
