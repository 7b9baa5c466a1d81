"""A real Prometheus on 127.0.0.1 with file-based service discovery, for tests and the demo.

    with Prometheus(workdir) as prom:             # free port, data in workdir/data
        prom.set_targets("workers", [("127.0.0.1:9100", {"namespace": "ns", "pod": "llm-decode-0",
                                                         "dgd": "llm", "service": "decode"})])
        prom.wait_for_targets("workers", 1)
        ...
        prom.restart()                            # same port, same data

Targets are published as file_sd JSON files (one per job, written atomically) that Prometheus
re-reads every second. A target with a `pod` label describes a pod (`namespace`, `pod`,
`container`, `dgd`, `service`, `component_type`, ...) and Prometheus keeps what the label mode
says; a target without one (synthetic series) keeps the labels it was given:

- `podmonitor` (default): what Dynamo's stock PodMonitors give a Kubernetes Prometheus:
  `namespace`, `pod`, `container` (`main`, Dynamo's main container), `endpoint` (the port name,
  `http` on frontends, `system` on workers) and `job` (`<namespace>/<PodMonitor>`:
  `dynamo-system/dynamo-frontend` or `dynamo-system/dynamo-worker`; other targets keep their
  file's name). Nothing else, so no `dgd` or `service`.
- `dgd-labels`: the same plus `dgd` and `service`, as PodMonitors that relabel the pod labels
  `nvidia.com/dynamo-graph-deployment-name` and `nvidia.com/dynamo-component` give.
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
import weakref
from pathlib import Path
from typing import Literal

import httpx
import yaml

from devcluster.procs import die_with_parent, free_port, stop_child

_JOB = re.compile(r"^[A-Za-z0-9_.-]+$")
LabelMode = Literal["podmonitor", "dgd-labels"]
LABEL_MODES = ("podmonitor", "dgd-labels")
# the namespace Dynamo's platform chart (and so its PodMonitors) is usually installed in
PODMONITOR_NAMESPACE = "dynamo-system"
_KEPT = {"podmonitor": "__.*|instance|job|namespace|pod|container|endpoint",
         "dgd-labels": "__.*|instance|job|namespace|pod|container|endpoint|dgd|service"}


def relabel_configs(mode: LabelMode) -> list[dict]:
    """Target relabelling that leaves a pod's target with the labels a PodMonitor gives it."""
    if mode not in LABEL_MODES:
        raise ValueError(f"label mode {mode!r}: expected one of {', '.join(LABEL_MODES)}")
    rules: list[dict] = []
    for regex, monitor, port in (("frontend", "dynamo-frontend", "http"), (".+", "dynamo-worker", "system")):
        # the first rule that matches wins: the worker rule skips targets already named
        rules += [
            {"source_labels": ["component_type", "endpoint"], "regex": f"({regex});", "target_label": "job",
             "replacement": f"{PODMONITOR_NAMESPACE}/{monitor}"},
            {"source_labels": ["component_type", "endpoint"], "regex": f"({regex});", "target_label": "endpoint",
             "replacement": port},
        ]
    rules += [
        {"source_labels": ["pod", "container"], "regex": ".+;", "target_label": "container", "replacement": "main"},
        {"action": "labelkeep", "regex": _KEPT[mode]},
    ]
    return rules


def write_file_sd(path: Path, targets: list[tuple[str, dict[str, str]]]) -> None:
    """Write a Prometheus file_sd JSON file atomically (one group per target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": [addr], "labels": labels} for addr, labels in targets]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(groups))
    os.replace(tmp, path)


class Prometheus:
    def __init__(self, workdir: Path, scrape_interval_s: float = 1.0, port: int | None = None,
                 retention: str = "1d", binary: str | None = None, labels: LabelMode = "podmonitor",
                 web_config: Path | None = None) -> None:
        if labels not in LABEL_MODES:
            raise ValueError(f"label mode {labels!r}: expected one of {', '.join(LABEL_MODES)}")
        self.labels = labels
        # Prometheus' own --web.config.file (TLS, basic auth); the helpers then need `client`
        self.web_config = Path(web_config) if web_config else None
        self.client_options: dict = {}
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
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def _tls(self) -> bool:
        if self.web_config is None:
            return False
        return bool((yaml.safe_load(self.web_config.read_text()) or {}).get("tls_server_config"))

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
        files = [{"files": [str(self.sd_dir / "*.json")], "refresh_interval": "1s"}]
        cfg = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "scrape_configs": [
                # pods, labelled as a PodMonitor labels them
                {"job_name": "dynamo", "scrape_interval": interval, "scrape_timeout": interval,
                 "file_sd_configs": files,
                 "relabel_configs": [{"source_labels": ["pod"], "regex": ".+", "action": "keep"},
                                     *relabel_configs(self.labels)]},
                # anything else (synthetic series in tests, benchmarks) keeps the labels it was given
                {"job_name": "other", "scrape_interval": interval, "scrape_timeout": interval,
                 "file_sd_configs": files,
                 "relabel_configs": [{"source_labels": ["pod"], "regex": ".+", "action": "drop"}]},
            ],
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
                 *([f"--web.config.file={self.web_config}"] if self.web_config else []),
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
            return httpx.get(self.url + path, timeout=timeout, **self.client_options).status_code
        except httpx.HTTPError:
            return None

    def _json(self, path: str, params: dict[str, str] | None = None) -> dict:
        r = httpx.get(self.url + path, params=params, timeout=5, **self.client_options)
        r.raise_for_status()
        return r.json()

    def active_targets(self, job: str | None = None) -> list[dict]:
        """Active targets published as `job` (set_targets), or of scrape job `dynamo` (pods)."""
        data = self._json("/api/v1/targets", {"state": "active"})["data"]["activeTargets"]
        # by the file the targets were published in (a PodMonitor's relabelling renames `job`),
        # or by scrape job: `dynamo` holds every pod
        return [t for t in data if job is None or job in (t["labels"].get("job"), t.get("scrapePool"))
                or Path(t.get("discoveredLabels", {}).get("__meta_filepath", "")).name == f"{job}.json"]

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
