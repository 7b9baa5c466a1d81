"""A real Prometheus on 127.0.0.1 with file-based service discovery, for tests and the demo.

    with Prometheus(workdir) as prom:             # free port, data in workdir/data
        prom.set_targets("workers", [("127.0.0.1:9100", {"dgd": "llm", "service": "decode"})])
        prom.wait_for_targets("workers", 1)
        ...
        prom.restart()                            # same port, same data

Targets are published as file_sd JSON files (one per job, written atomically) that Prometheus
re-reads every second; the file's name becomes the `job` label unless the labels set one.
The process runs in its own session and is killed on `stop()`, on leaving the `with` block, when
the object is garbage-collected, at interpreter exit and (Linux) when the starting thread dies.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from pathlib import Path

import yaml

from devcluster.procs import die_with_parent, free_port, stop_child

_JOB = re.compile(r"^[A-Za-z0-9_.-]+$")

def write_file_sd(path: Path, targets: list[tuple[str, dict[str, str]]]) -> None:
    """Write a Prometheus file_sd JSON file atomically (one group per target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": [addr], "labels": labels} for addr, labels in targets]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(groups))
    os.replace(tmp, path)


class Prometheus:
    def __init__(self, workdir: Path, scrape_interval_s: float = 1.0, port: int | None = None,
                 retention: str = "1d", binary: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.scrape_interval_s = scrape_interval_s
        self.port = port or free_port()
        self.retention = retention
        self.binary = binary
        self.sd_dir = self.workdir / "targets"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "prometheus.log"
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None

    # -- addresses -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    # -- configuration ---------------------------------------------------------------------
    def _config(self) -> Path:
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        interval = f"{max(1, int(round(self.scrape_interval_s * 1000)))}ms"
        cfg = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
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

    def set_targets(self, job: str, targets: list[tuple[str, dict[str, str]]]) -> None:
        """Publish scrape targets (`host:port`, labels) as job `job`, replacing that job's
        previous targets atomically. An empty list removes them."""
        if not _JOB.match(job):
            raise ValueError(f"job name {job!r}: use letters, digits, '_', '.', '-'")
        write_file_sd(self.sd_dir / f"{job}.json", [(a, {"job": job, **labels}) for a, labels in targets])

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> "Prometheus":
        if self.running:
            return self
        binary = self.binary or shutil.which("prometheus")
        if not binary:
            raise RuntimeError("prometheus is not installed (Debian: apt-get install prometheus)")
        cfg = self._config()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.data_dir}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 f"--storage.tsdb.retention.time={self.retention}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent,
            )
        self._finalizer = weakref.finalize(self, stop_child, self._proc)
        atexit.register(self._finalizer)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError("prometheus exited during start-up: " + self.log_tail())
            if self._get("/-/ready", timeout=1) == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"prometheus not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc)
        if self._finalizer is not None:
            atexit.unregister(self._finalizer)
            self._finalizer.detach()
            self._finalizer = None

    def restart(self, timeout_s: float = 30.0) -> "Prometheus":
        """Stop, then start again on the same port with the same data."""
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> "Prometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests -----------------------------------------------------------------
    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _get(self, path: str, timeout: float = 2.0) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def _json(self, path: str, params: dict[str, str] | None = None) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=5) as r:
            return json.loads(r.read())

    def active_targets(self, job: str | None = None) -> list[dict]:
        data = self._json("/api/v1/targets", {"state": "active"})["data"]["activeTargets"]
        return [t for t in data if job is None or t["labels"].get("job") == job]

    def wait_for_targets(self, job: str, count: int, timeout_s: float = 30.0) -> None:
        """Wait until `count` targets of `job` have been scraped successfully."""
        deadline = time.monotonic() + timeout_s
        up: list[dict] = []
        while time.monotonic() < deadline:
            up = [t for t in self.active_targets(job) if t.get("health") == "up"]
            if len(up) >= count:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{len(up)}/{count} targets of job {job!r} up after {timeout_s:.0f} s")

    def query(self, promql: str) -> list[dict]:
        """Instant query; returns Prometheus' `result` list."""
        body = self._json("/api/v1/query", {"query": promql})
        return body["data"]["result"]

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[dict]:
        """Range query (Unix times); returns Prometheus' `result` list of series with `values`."""
        body = self._json("/api/v1/query_range",
                          {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"})
        return body["data"]["result"]
