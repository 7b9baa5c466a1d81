"""Build the real prometheus-adapter (`sigs.k8s.io/prometheus-adapter`) from its Go module
(`tools/prometheus-adapter/`) once per version into the control plane's cache, and run it on
127.0.0.1 against a local control plane and a local Prometheus, as a point of comparison for
our external-metrics server (benchmarks/metrics_vs_prometheus_adapter.py).

The module declares the adapter's command as a Go `tool` (v0.12.0's go.mod has no replace
directives, so the wrapper needs none), so `go build sigs.k8s.io/prometheus-adapter/cmd/adapter`
inside it builds exactly the pinned version. The cache key covers go.mod, go.sum and the Go
toolchain. It is built on demand only (not by scripts/setup.sh nor the tests).

The rules config (`tools/prometheus-adapter/rules.yaml`) is generated from our signal mapping,
so both servers evaluate the same PromQL over the same series:

    python -m devcluster.prometheus_adapter            # build (or find) the adapter, print its path
    python -m devcluster.prometheus_adapter rules      # print the rules config for the default mapping
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from devcluster.build import _go_version, cache_root, required_version
from devcluster.procs import die_with_parent, free_port, poll_until, stop_child

log = logging.getLogger(__name__)

MODULE_DIR = Path(__file__).resolve().parent / "tools" / "prometheus-adapter"
RULES_FILE = MODULE_DIR / "rules.yaml"
PACKAGE = "sigs.k8s.io/prometheus-adapter/cmd/adapter"

# Signals served by both servers, each with the series whose presence makes the adapter list
# it (its seriesQuery): the adapter only serves a metric it has discovered in Prometheus.
SIGNAL_SERIES: dict[str, str] = {
    "dynamo_queue_depth": ('{__name__=~"dynamo_frontend_queued_requests|dynamo_frontend_inflight_requests|'
                           'vllm:num_requests_waiting|dynamo_component_num_requests_waiting|sglang:num_queue_reqs",'
                           'dgd!=""}'),
    "dynamo_kv_cache_usage": ('{__name__=~"dynamo_component_kvstats_total_blocks|'
                              'dynamo_component_kvstats_gpu_cache_usage_percent|dynamo_component_gpu_cache_usage_percent|'
                              'vllm:kv_cache_usage_perc|vllm:gpu_cache_usage_perc",dgd!=""}'),
    "dynamo_kv_cache_usage_sum": "",  # the same series as the mean, set below
    "dynamo_request_rate": '{__name__="dynamo_frontend_requests_total",dgd!=""}',
    "dynamo_ttft_seconds_p95": '{__name__="dynamo_frontend_time_to_first_token_seconds_bucket",dgd!=""}',
}
SIGNAL_SERIES["dynamo_kv_cache_usage_sum"] = SIGNAL_SERIES["dynamo_kv_cache_usage"]
SIGNALS = tuple(SIGNAL_SERIES)

# What the adapter puts where our templates say {sel}: the same `dgd!=""` plus the HPA's
# label selector and the request's namespace, rendered by the adapter per read.
ADAPTER_SELECTOR = 'dgd!="",<<.LabelMatchers>>'


def adapter_version(module_dir: Path = MODULE_DIR) -> str:
    return required_version(module_dir, "sigs.k8s.io/prometheus-adapter")


def cache_key(module_dir: Path = MODULE_DIR) -> str:
    h = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        h.update(name.encode())
        h.update((module_dir / name).read_bytes())
    h.update(_go_version().encode())
    return f"{adapter_version(module_dir)}-{h.hexdigest()[:12]}"


def adapter_path(module_dir: Path = MODULE_DIR) -> Path:
    return cache_root() / "prometheus-adapter" / cache_key(module_dir) / "prometheus-adapter"


def ensure_adapter(module_dir: Path = MODULE_DIR) -> Path:
    """Return the cached adapter binary, building it first if it is missing."""
    out = adapter_path(module_dir)
    if os.access(out, os.X_OK):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    tmp = out.parent / f".prometheus-adapter.{os.getpid()}.tmp"  # two first runs at once must not share it
    log.info("building prometheus-adapter %s from its Go module (about 3 minutes on 2 cores the first "
             "time, cached after)", adapter_version(module_dir), extra={"dir": str(out.parent)})
    started = time.monotonic()
    proc = subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), PACKAGE],
                          cwd=module_dir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"building prometheus-adapter failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    tmp.replace(out)
    log.info("built prometheus-adapter in %.0f s", time.monotonic() - started)
    return out


# -- rules config ---------------------------------------------------------------------------
def adapter_query(mapping, name: str) -> str:
    """The adapter's metricsQuery template for our signal `name`: our PromQL with the adapter's
    label matchers in place of {sel} (every other placeholder rendered as our server does)."""
    sig = mapping.signals[name]
    return (sig.query.replace("{sel}", ADAPTER_SELECTOR)
            .replace("{by}", mapping.group_by)
            .replace("{window}", mapping.window))


def rules_config(mapping=None, signals: tuple[str, ...] = SIGNALS) -> dict:
    """prometheus-adapter `externalRules` exposing `signals` of `mapping` (default: ours) under
    the same names, namespaced by the Prometheus label our mapping reads the namespace from."""
    if mapping is None:
        from external_metrics.signals import SignalMapping
        mapping = SignalMapping()
    rules = []
    for name in signals:
        rules.append({
            "seriesQuery": SIGNAL_SERIES[name],
            "resources": {"overrides": {mapping.labels.namespace: {"resource": "namespace"}}},
            "name": {"matches": ".*", "as": name},
            "metricsQuery": adapter_query(mapping, name),
        })
    return {"externalRules": rules}


def render_rules(mapping=None) -> str:
    return ("# Generated by `python -m devcluster.prometheus_adapter rules` from external_metrics/signals.py\n"
            "# (a test checks it is current): prometheus-adapter serving our default signals.\n"
            + yaml.safe_dump(rules_config(mapping), sort_keys=False, width=10_000))


# -- running it ------------------------------------------------------------------------------
class PrometheusAdapter:
    """prometheus-adapter on 127.0.0.1 (TLS, a free port) against a control plane's kubeconfig
    and a Prometheus URL, with delegated authentication and authorization like any aggregated
    API server. Put an APIService in front of it to read it through kube-apiserver."""

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path, prometheus_url: str, *,
                 tls_cert: Path, tls_key: Path, rules: Path = RULES_FILE, relist_interval: str = "30s",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.binary, self.workdir = Path(binary), Path(workdir)
        self.kubeconfig, self.prometheus_url = Path(kubeconfig), prometheus_url
        self.tls_cert, self.tls_key, self.rules = Path(tls_cert), Path(tls_key), Path(rules)
        self.relist_interval = relist_interval
        self.extra_args = tuple(extra_args)
        self.port = free_port()
        self.log_path = self.workdir / "prometheus-adapter.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def args(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [str(self.binary),
                f"--prometheus-url={self.prometheus_url}", f"--config={self.rules}",
                f"--metrics-relist-interval={self.relist_interval}",
                f"--lister-kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1", f"--secure-port={self.port}",
                f"--tls-cert-file={self.tls_cert}", f"--tls-private-key-file={self.tls_key}",
                f"--cert-dir={self.workdir / 'certs'}", "--v=1", *self.extra_args]

    def start(self, timeout_s: float = 60.0) -> "PrometheusAdapter":
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.args(), stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=die_with_parent)
        poll_until(self._ready, timeout_s, f"prometheus-adapter ready ({self.log_path})", 0.2)
        return self

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"prometheus-adapter exited: {self.log_tail()}")
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:  # /healthz is open to anonymous callers in a delegating server's default config
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1, context=ctx) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_child(proc)

    def __enter__(self) -> "PrometheusAdapter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["rules"]:
        sys.stdout.write(render_rules())
        return 0
    print(ensure_adapter())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
