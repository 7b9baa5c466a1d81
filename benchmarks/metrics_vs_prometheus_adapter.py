"""External metrics through kube-apiserver: this metrics server side by side with the real
prometheus-adapter (v0.12.0, built from its Go module on first use), same Prometheus, same series.

What an HPA does is measured for both: GET
/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/dynamo_queue_depth?labelSelector=dgd=..,service=..
on kube-apiserver, which proxies it through the aggregation layer to whichever server the
APIService `v1beta1.external.metrics.k8s.io` names. The caller has an HPA's identity: the
ServiceAccount kube-system/horizontal-pod-autoscaler (a bearer token, as kube-controller-manager
uses with --use-service-account-credentials) allowed to read external metrics, so both servers
authenticate and authorize it the way they would the HPA controller.

Why the APIService is switched between the two rather than running both: an APIService's name is
its version and group, so exactly one can own `v1beta1.external.metrics.k8s.io` on a plane. A
second control plane would double the API server's CPU on a 2-core machine and put the two
servers behind different API servers; switching keeps one API server, one Prometheus, one set
of series, and both servers running (each is idle while the other is measured).

Series: static exporters (tests/exporter_process.py, one per namespace) serve `--series` worker gauges: per pod
`vllm:num_requests_waiting` and `vllm:kv_cache_usage_perc`, 5 pods per DGD service, 2 services
(prefill, decode) per DGD, 10 namespaces, so the number of DGD services grows with the series
(200 services at 2,000 series, 2,000 at 20,000). Another, small exporter serves a probe service
whose queue depth the freshness test changes. Prometheus scrapes all every `--scrape-interval`.

Per server and number of concurrent readers (`--readers`, wrk connections, each reading a random
DGD service): p50/p99 latency and reads/s (wrk), Prometheus queries/s (its own
`prometheus_engine_query_duration_seconds_count`), Prometheus CPU (cores), the server's CPU ms
per read and its RSS, kube-apiserver CPU ms per read. Freshness: the probe's gauge is changed
and the time until a read through kube-apiserver returns the new value is taken, `--freshness`
times per server. With each server, a real HPA (sync `--hpa-sync`) scales a DGDSA 1 -> 3 -> 1 on the probe's queue
depth (the first size only). The per-request PromQL baseline (the signal's PromQL for the service, straight
to Prometheus, no API server) runs at the same reader counts for the old ratio.

Needs wrk (apt-get install wrk), prometheus and Go. Prints markdown, writes
benchmarks/results/metrics_vs_prometheus_adapter.json.

Usage: .venv/bin/python benchmarks/metrics_vs_prometheus_adapter.py [--series 2000 20000]
       [--readers 1 4 16 64] [--seconds 10] [--freshness 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' exporter process

from exporter_process import Exporter  # noqa: E402
from metrics_read import cpu_seconds, prometheus_queries, wait_http  # noqa: E402

from devcluster import apiservice, certs, controlplane  # noqa: E402
from devcluster.apiservice import APISERVICE  # noqa: E402
from devcluster import procs  # noqa: E402
from devcluster.kubectl import Kubectl  # noqa: E402
from devcluster.procs import free_port, poll_until  # noqa: E402
from devcluster.prometheus import Prometheus  # noqa: E402
from devcluster.prometheus_adapter import PrometheusAdapter, ensure_adapter  # noqa: E402
from external_metrics.settings import Settings  # noqa: E402
from external_metrics.signals import SignalMapping  # noqa: E402

BASE = "/apis/external.metrics.k8s.io/v1beta1"
SIGNAL = "dynamo_queue_depth"
NAMESPACES, SERVICES, PODS = 10, ("prefill", "decode"), 5
SVC_NS = "metrics-bench"
PROBE = ("ns-0", "probe", "decode")
SERVERS = ("metrics-server", "prometheus-adapter")  # also their Services' names
MAPPING = SignalMapping(preset="dgd-labels")  # what devcluster/prometheus_adapter.py generates the rules from

WRK_SCRIPT = r"""
local paths = {}
local auth = nil
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  auth = args[2]
  math.randomseed(7)
end
request = function()
  local headers = {["Accept"] = "application/json"}
  if auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
-- statuses other than 200 per thread (wrk runs one Lua state per thread; thread:get reads a
-- global), with a sample body
statuses = {}
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
response = function(status, headers, body)
  if status ~= 200 then
    local k = tostring(status)
    statuses[k] = (statuses[k] or 0) + 1
    if not statuses["body" .. k] then statuses["body" .. k] = string.sub(body or "", 1, 200) end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %f}\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
  for _, t in ipairs(threads) do
    local st = t:get("statuses") or {}
    for k, v in pairs(st) do
      if type(v) == "number" then io.write(string.format("STATUS %s %d\n", k, v)) end
    end
    for k, v in pairs(st) do
      if type(v) == "string" then io.write("BODY " .. string.sub(k, 5) .. " " .. string.gsub(v, "\n", " ") .. "\n") end
    end
  end
end
"""


# -- series ---------------------------------------------------------------------------------
def worker_series(n: int) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """About `n` worker gauge series (2 per pod, PODS pods per service) and the services."""
    rnd, series, keys = random.Random(7), [], []
    dgds = max(1, n // (2 * PODS * len(SERVICES) * NAMESPACES))
    for i in range(NAMESPACES):
        for d in range(dgds):
            for svc in SERVICES:
                ns, dgd = f"ns-{i}", f"dgd-{d}"
                keys.append((ns, dgd, svc))
                for p in range(PODS):
                    labels = {"namespace": ns, "dgd": dgd, "service": svc, "dynamo_namespace": f"{ns}-{dgd}",
                              "pod": f"{dgd}-{svc}-{p}", "model_name": "m"}
                    series.append({"name": "vllm:num_requests_waiting", "labels": labels, "value": rnd.randint(0, 20)})
                    series.append({"name": "vllm:kv_cache_usage_perc", "labels": labels, "value": rnd.random()})
    return series, keys


def probe_series(queue: int) -> list[dict]:
    ns, dgd, svc = PROBE
    return [{"name": "vllm:num_requests_waiting", "value": queue,
             "labels": {"namespace": ns, "dgd": dgd, "service": svc, "dynamo_namespace": f"{ns}-{dgd}",
                        "pod": f"{dgd}-{svc}-0", "model_name": "m"}}]


def read_path(key: tuple[str, str, str], signal: str = SIGNAL) -> str:
    ns, dgd, svc = key
    return f"{BASE}/namespaces/{ns}/{signal}?" + urlencode({"labelSelector": f"dgd={dgd},service={svc}"})


def promql_path(mapping: SignalMapping, key: tuple[str, str, str], signal: str = SIGNAL) -> str:
    ns, dgd, svc = key
    return "/api/v1/query?" + urlencode({"query": mapping.render(signal, {"namespace": ns, "dgd": dgd, "service": svc})})


# -- processes ------------------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class OurServer:
    """`dynamo-scaling metrics-server` on a TLS port for the aggregation layer (plain HTTP port
    only for its readiness probe), with its default collection interval unless told."""

    def __init__(self, workdir: Path, prom_url: str, kubeconfig: Path, cert: certs.KeyPair, interval: float):
        workdir.mkdir(parents=True, exist_ok=True)
        # the mapping the adapter's rules are generated from: series carry `dgd`/`service` labels
        signals = workdir / "signals.yaml"
        signals.write_text(f"preset: {MAPPING.preset}\n")
        self.port, self.http_port = free_port(), free_port()
        self.log = open(workdir / "metrics-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynamo_scaling.cli", "--log-level", "WARNING", "metrics-server",
             f"--prometheus-url={prom_url}", f"--secure-port={self.port}", f"--http-port={self.http_port}",
             "--grpc-port=0", f"--interval={interval:g}", f"--signals-file={signals}", f"--staleness={max(30.0, 3 * interval):g}",
             f"--kubeconfig={kubeconfig}", f"--tls-cert-file={cert.cert}", f"--tls-private-key-file={cert.key}"],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.http_port}/readyz", 60)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        procs.stop(self.proc, 10)
        self.log.close()


class Plane:
    """The control plane, the HPA identity, and the APIService switch."""

    def __init__(self, workdir: Path, hpa_sync_s: float):
        self.dir = workdir / "plane"
        self.state = controlplane.up(self.dir, hpa_sync_period_s=hpa_sync_s)
        self.kubectl = Kubectl(controlplane.kubectl_path(), self.state.kubeconfig)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        self.ca = certs.make_ca(workdir, "serving-ca", "metrics-serving-ca")
        # the aggregation layer checks the name <service>.<namespace>.svc
        self.serving = certs.issue(self.ca, workdir, "serving", "metrics",
                                   dns=(*(f"{s}.{SVC_NS}.svc" for s in SERVERS), "localhost"),
                                   ips=("127.0.0.1",), server=True)
        k = self.kubectl
        k("create", "namespace", SVC_NS)
        k("create", "namespace", PROBE[0])  # where the HPA of the probe service lives
        # what kubeadm-style clusters give the HPA controller: read access to external metrics
        k.apply([{"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": "horizontal-pod-autoscaler", "namespace": "kube-system"}},
                 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                  "metadata": {"name": "external-metrics-reader"},
                  "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"],
                             "verbs": ["get", "list", "watch"]}]},
                 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": "hpa-external-metrics"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "external-metrics-reader"},
                  "subjects": [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
                                "namespace": "kube-system"}]}])
        self.token = k("-n", "kube-system", "create", "token", "horizontal-pod-autoscaler", "--duration=2h").strip()
        self.ssl = ssl.create_default_context(cafile=str(self.state.pki("ca.crt")))

    @property
    def apiserver_pid(self) -> int:
        return self.state.pids["kube-apiserver"]

    def point_at(self, name: str, port: int, probe_ok) -> float:
        """Route the APIService to 127.0.0.1:`port` (an ExternalName Service `name`); return the
        seconds until a read answers from that server (`probe_ok(body)`)."""
        started = time.monotonic()
        self.kubectl.apply(apiservice.manifests(SVC_NS, name, port, self.ca.cert))

        last: list = []

        def answered():
            try:
                code, body = self.get(read_path(PROBE))
            except OSError as exc:
                last[:] = [repr(exc)]
                return None
            last[:] = [code, body[:300]]
            return code == 200 and probe_ok(json.loads(body))

        try:
            poll_until(answered, 60, f"reads answered by {name} through kube-apiserver", 0.2)
        except TimeoutError as exc:
            status = self.kubectl.json("get", "apiservice", APISERVICE).get("status")
            raise TimeoutError(f"{exc} (last answer: {last}; APIService status {status})") from None
        return time.monotonic() - started

    def get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(self.state.server + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def value(self, key: tuple[str, str, str]) -> float | None:
        code, body = self.get(read_path(key))
        if code != 200:
            return None
        items = json.loads(body)["items"]
        from kubernetes.utils.quantity import parse_quantity
        return float(parse_quantity(items[0]["value"])) if items else None

    def close(self) -> None:
        self.kubectl.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        controlplane.down(self.dir)


# signatures that tell which server answered: the adapter copies every result label, the
# namespace included, into metricLabels; this server leaves the namespace in the URL
def answered_by_ours(body: dict) -> bool:
    return bool(body.get("items")) and "namespace" not in body["items"][0].get("metricLabels", {})


def answered_by_adapter(body: dict) -> bool:
    return bool(body.get("items")) and "namespace" in body["items"][0].get("metricLabels", {})


# -- measuring ------------------------------------------------------------------------------
def wrk(url: str, paths: list[str], readers: int, seconds: float, workdir: Path, token: str = "") -> dict:
    (workdir / "paths.txt").write_text("\n".join(paths) + "\n")
    (workdir / "read.lua").write_text(WRK_SCRIPT)
    threads = max(1, min(readers, 2))
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{readers}", f"-d{seconds:g}s", "--timeout", "30s",
                          "-s", str(workdir / "read.lua"), url, "--", str(workdir / "paths.txt"), token],
                         capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    statuses: dict[str, int] = {}
    bodies: dict[str, str] = {}
    for ln in out.splitlines():
        if ln.startswith("STATUS "):
            _, code, n = ln.split()
            statuses[code] = statuses.get(code, 0) + int(n)
        elif ln.startswith("BODY "):
            code, _, body = ln[len("BODY "):].partition(" ")
            bodies.setdefault(code, body)
    ok = r["requests"] - r["non2xx"]
    return {"readers": readers, "seconds": r["duration_us"] / 1e6, "reads": ok, "errors": r["non2xx"] + r["socket_errors"],
            "error_statuses": statuses, "error_bodies": bodies,
            "reads_per_s": ok / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "mean_ms": r["mean_us"] / 1000}


def measure(url: str, paths: list[str], readers: int, seconds: float, workdir: Path, token: str,
            server_pid: int | None, prom: Prometheus, apiserver_pid: int | None) -> dict:
    pids = {"server": server_pid, "prometheus": prom.pid, "apiserver": apiserver_pid}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items() if p}
    q0 = prometheus_queries(prom.url)
    r = wrk(url, paths, readers, seconds, workdir, token)
    q1 = prometheus_queries(prom.url)
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items() if p}
    reads = max(r["reads"], 1)
    r["prometheus_queries_per_s"] = (q1 - q0) / r["seconds"]
    r["prometheus_queries_per_read"] = (q1 - q0) / reads
    r["prometheus_cpu_cores"] = cpu["prometheus"] / r["seconds"]
    # a scrape of a workers exporter that times out marks its series stale: both servers then
    # rightly answer "no data", and this server keeps that answer until its next collection
    w = f'{max(1, round(r["seconds"]))}s'
    failed = prom.query(f'sum(count_over_time(up{{job="workers"}}[{w}]) - sum_over_time(up{{job="workers"}}[{w}]))')
    r["failed_scrapes"] = int(float(failed[0]["value"][1])) if failed else 0
    if "server" in cpu:
        r["server_cpu_ms_per_read"] = 1000 * cpu["server"] / reads
        r["server_rss_mb"] = rss_bytes(server_pid) / 2**20
    if "apiserver" in cpu:
        r["apiserver_cpu_ms_per_read"] = 1000 * cpu["apiserver"] / reads
    return r


def freshness(plane: Plane, probe: Exporter, rounds: int, start_value: int) -> list[float]:
    """Seconds from changing the probe's gauge to the first read through kube-apiserver that
    returns the new value."""
    out = []
    for i in range(rounds):
        v = start_value + i + 1
        probe.set(probe_series(v))
        t0 = time.monotonic()
        poll_until(lambda: plane.value(PROBE) == v, 120, f"probe value {v} served", 0.05)
        out.append(time.monotonic() - t0)
    return out


def hpa_round_trip(plane: Plane, probe: Exporter, timeout_s: float = 180) -> dict:
    """A DGDSA scaled by a real HPA on the probe's queue depth (AverageValue 2 per replica):
    queue 6 -> 3 replicas, queue 0 -> 1. Nothing but the HPA writes the DGDSA's replicas here
    (no operator runs), so this shows the metric path alone; seconds to each step."""
    from devcluster.manifests import external_hpa
    ns, dgd, svc = PROBE
    k, name = plane.kubectl, f"{dgd}-{svc}"
    probe.set(probe_series(0))
    k.apply({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
             "metadata": {"name": name}, "spec": {"replicas": 1, "dgdRef": {"name": dgd, "serviceName": svc}}}, ns)
    # what the adapter controller would report: the HPA needs a selector on the scale subresource
    k("-n", ns, "patch", "dgdsa", name, "--subresource=status", "--type=merge", "-p",
      json.dumps({"status": {"replicas": 1, "selector": f"nvidia.com/dynamo-graph-deployment-name={dgd}"}}))
    k.apply(external_hpa("probe", name, SIGNAL, "2", {"dgd": dgd, "service": svc}, max_replicas=5,
                         behavior={"scaleDown": {"stabilizationWindowSeconds": 0}}), ns)

    def replicas() -> int:
        return k.json("-n", ns, "get", "dgdsa", name)["spec"]["replicas"]

    def active() -> bool:
        conds = k.json("-n", ns, "get", "hpa", "probe").get("status", {}).get("conditions", [])
        return any(c["type"] == "ScalingActive" and c["status"] == "True" for c in conds)

    try:
        poll_until(active, timeout_s, "HPA reading the external metric", 0.5)
        out = {}
        for queue, want, step in ((6, 3, "up_1_to_3_s"), (0, 1, "down_3_to_1_s")):
            probe.set(probe_series(queue))
            t0 = time.monotonic()
            poll_until(lambda: replicas() == want, timeout_s, f"DGDSA at {want} replicas", 0.25)
            out[step] = time.monotonic() - t0
        return out
    finally:
        k.run("-n", ns, "delete", "hpa", "probe", "--ignore-not-found", check=False)
        k.run("-n", ns, "delete", "dgdsa", name, "--ignore-not-found", check=False)


def run_size(n: int, plane: Plane, adapter_bin: Path, args, work: Path, hpa: bool) -> dict:
    work.mkdir(parents=True)
    series, keys = worker_series(n)
    mapping = MAPPING
    # one exporter per namespace: one process serving 20,000 series takes about a second per
    # scrape here, and a scrape that overruns the interval marks all its series stale
    by_ns: dict[str, list[dict]] = {}
    for sv in series:
        by_ns.setdefault(sv["labels"]["namespace"], []).append(sv)
    bigs = [Exporter(work / f"workers-{ns}", part) for ns, part in by_ns.items()]
    probe = Exporter(work / "probe", probe_series(0))
    prom = Prometheus(work / "prometheus", scrape_interval_s=args.scrape_interval).start()
    ours = adapter = None
    try:
        prom.set_targets("workers", [(b.address, {}) for b in bigs])
        prom.set_targets("probe", [(probe.address, {})])
        prom.wait_for_targets("workers", len(bigs), 60)
        prom.wait_for_targets("probe", 1, 60)
        gauges = len(prom.query('{__name__=~"vllm:.+",dgd!=""}'))
        ours = OurServer(work / "ours", prom.url, plane.state.kubeconfig, plane.serving, args.interval)
        adapter = PrometheusAdapter(adapter_bin, work / "adapter", plane.state.kubeconfig, prom.url,
                                    tls_cert=plane.serving.cert, tls_key=plane.serving.key).start()
        paths = [read_path(k) for k in keys]
        result: dict = {"series": gauges, "services": len(keys), "servers": {}}
        for name, server, probe_ok in (("metrics-server", ours, answered_by_ours),
                                       ("prometheus-adapter", adapter, answered_by_adapter)):
            switch_s = plane.point_at(name, server.port, probe_ok)
            # warm-up: connections, authorization caches, the Python server's first requests
            wrk(plane.state.server, paths, 4, 2, work, plane.token)
            runs = [measure(plane.state.server, paths, c, args.seconds, work, plane.token, server.pid, prom,
                            plane.apiserver_pid) for c in args.readers]
            fresh = freshness(plane, probe, args.freshness, 100 * len(result["servers"]))
            result["servers"][name] = {"switch_s": switch_s, "runs": runs, "freshness_s": fresh,
                                       "rss_mb_after": rss_bytes(server.pid) / 2**20}
            if hpa:
                result["servers"][name]["hpa"] = hpa_round_trip(plane, probe)
        if not args.no_promql:
            promql = [promql_path(mapping, k) for k in keys]
            result["servers"]["per-request PromQL (no API server)"] = {
                "runs": [measure(prom.url, promql, c, args.seconds, work, "", None, prom, None) for c in args.readers]}
        return result
    finally:
        for p in (adapter, ours):
            if p:
                p.stop()
        prom.stop()
        for b in bigs:
            b.stop()
        probe.stop()


def table(results: dict, args) -> str:
    lines = []
    for size, res in results["sizes"].items():
        lines.append(f"\n### {res['series']:,} worker series, {res['services']:,} DGD services, "
                     f"`{SIGNAL}` of one service per read (scrape {args.scrape_interval:g} s, "
                     f"collection {args.interval:g} s)\n")
        lines.append("| server | readers | p50 ms | p99 ms | reads/s | errors | Prom queries/s | Prom CPU cores | "
                     "server CPU ms/read | server RSS MB | apiserver CPU ms/read |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, srv in res["servers"].items():
            for r in srv["runs"]:
                def f(key, fmt=".2f"):
                    return format(r[key], fmt) if key in r else "-"
                errors = f"{r['errors']}" + (f" ({', '.join(f'{k}: {v}' for k, v in r['error_statuses'].items())})"
                                             if r.get("error_statuses") else "")
                if r.get("failed_scrapes"):
                    errors += f"; {r['failed_scrapes']} failed scrapes"
                lines.append(f"| {name} | {r['readers']} | {f('p50_ms')} | {f('p99_ms')} | {f('reads_per_s', ',.0f')} | "
                             f"{errors} | "
                             f"{f('prometheus_queries_per_s', '.1f')} | {f('prometheus_cpu_cores')} | "
                             f"{f('server_cpu_ms_per_read', '.3f')} | {f('server_rss_mb', '.0f')} | "
                             f"{f('apiserver_cpu_ms_per_read', '.3f')} |")
        lines.append("")
        for name, srv in res["servers"].items():
            if "freshness_s" in srv:
                fr = srv["freshness_s"]
                lines.append(f"- freshness, {name}: median {statistics.median(fr):.1f} s, max {max(fr):.1f} s "
                             f"({len(fr)} changes)")
            if "hpa" in srv:
                h = srv["hpa"]
                lines.append(f"- HPA on {name}: DGDSA 1 -> 3 replicas in {h['up_1_to_3_s']:.1f} s after the queue "
                             f"rose to 6, 3 -> 1 in {h['down_3_to_1_s']:.1f} s after it fell to 0")
    rss = results.get("rss_bytes_per_series")
    if rss:
        lines.append("")
        for name, v in rss.items():
            lines.append(f"- RSS growth per added series, {name}: {v:,.0f} bytes")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--readers", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each wrk run (long enough to hold a few collections)")
    ap.add_argument("--freshness", type=int, default=3, help="gauge changes timed per server")
    ap.add_argument("--scrape-interval", type=float, default=2.0)
    ap.add_argument("--interval", type=float, default=Settings.model_fields["interval"].default,
                    help="our server's --interval (default: its own default)")
    ap.add_argument("--no-hpa", dest="hpa", action="store_false",
                    help="skip scaling a DGDSA 1 -> 3 -> 1 with a real HPA on each server")
    ap.add_argument("--hpa-sync", type=float, default=2.0, help="the HPA controller's sync period (s)")
    ap.add_argument("--no-promql", action="store_true", help="skip the per-request PromQL baseline")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "metrics_vs_prometheus_adapter.json")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        ap.error("wrk is not installed (apt-get install wrk)")
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    adapter_bin = ensure_adapter()
    results: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "machine": {"cpus": os.cpu_count()}, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="metrics-vs-adapter-") as tmp:
        plane = Plane(Path(tmp), args.hpa_sync)
        try:
            for n in args.series:
                print(f"-- {n} series", file=sys.stderr, flush=True)
                results["sizes"][str(n)] = run_size(n, plane, adapter_bin, args, Path(tmp) / f"size-{n}",
                                                    hpa=args.hpa and n == args.series[0])
        finally:
            plane.close()
    sizes = list(results["sizes"].values())
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        results["rss_bytes_per_series"] = {
            name: (hi["servers"][name]["rss_mb_after"] - lo["servers"][name]["rss_mb_after"]) * 2**20
            / max(hi["series"] - lo["series"], 1)
            for name in ("metrics-server", "prometheus-adapter")}
    print(table(results, args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
