"""Metric reads: this server's cache vs a per-request PromQL baseline, same Prometheus, same run.

2,000 worker series (20 namespaces x 10 DGDs x 2 services x 5 pods, `vllm:num_requests_waiting`)
and the TTFT histograms of 200 frontends (counters growing on every scrape) are served by an
exporter process and scraped by a real Prometheus. Reads ask for one signal of one DGD service
(a labelSelector, as an HPA does), for two signals: `dynamo_queue_depth` (a sum of gauges, the
cheapest PromQL) and `dynamo_ttft_seconds_p95` (histogram_quantile over a 1m rate):
- server: GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/dynamo_queue_depth on the
  metrics server (plain-HTTP port, answered from its cache);
- baseline: the same signal's PromQL, filtered to that service, sent to Prometheus per request
  (what a per-request adapter does, minus the adapter's own work: a lower bound of its cost);
- stack ceiling: an ASGI app on the same uvicorn stack that answers a constant body of the same
  size without looking at anything: the most any Python server on this stack can answer here,
  so `ceiling / baseline` bounds the speedup any cache can show on this machine.
Latency: sequential requests on one keep-alive connection (p50/p99). Throughput: 8 concurrent
connections for a fixed time, driven by `wrk` when it is installed (`apt-get install wrk`; it
costs the measured side far less CPU than a Python client), else by a small asyncio client.
CPU per read is the CPU time of the process that answers (the metrics server, Prometheus, the
ceiling app) over the throughput run divided by the reads: less noisy than req/s on a shared
machine. Prints a table, writes benchmarks/results/metrics_read.json.

Usage: .venv/bin/python benchmarks/metrics_read.py [--requests 2000] [--seconds 5] [--client auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from kubernetes.utils.quantity import parse_quantity

from devcluster.procs import free_port
from devcluster.prometheus import Prometheus
from external_metrics.signals import SignalMapping

REPO = Path(__file__).resolve().parents[1]
NAMESPACES, DGDS, SERVICES, PODS = 20, 10, ("prefill", "decode"), 5

EXPORTER = r"""
import json, random, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
static = open(sys.argv[2]).read()
frontends = [tuple(f) for f in json.load(open(sys.argv[3]))]
BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, "+Inf")
counts = {f: [0] * len(BUCKETS) for f in frontends}
sums = {f: 0.0 for f in frontends}
lock, rnd = threading.Lock(), random.Random(3)
def histograms():
    out = ["# TYPE dynamo_frontend_time_to_first_token_seconds histogram"]
    with lock:
        for f in frontends:
            n = rnd.randint(5, 50)
            for i in range(len(BUCKETS)):
                counts[f][i] += int(n * min(1.0, (i + 1) / 8))
            sums[f] += n * 0.3
            labels = f'namespace="{f[0]}",dgd="{f[1]}",service="Frontend",dynamo_namespace="{f[0]}-{f[1]}",model="m"'
            for b, c in zip(BUCKETS, counts[f]):
                out.append(f'dynamo_frontend_time_to_first_token_seconds_bucket{{{labels},le="{b}"}} {c}')
            out.append(f"dynamo_frontend_time_to_first_token_seconds_sum{{{labels}}} {sums[f]}")
            out.append(f"dynamo_frontend_time_to_first_token_seconds_count{{{labels}}} {counts[f][-1]}")
    return "\n".join(out) + "\n"
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (static + histograms()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:  # the scrape timed out on a loaded machine; the next one retries
            pass
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


CEILING = r"""
import sys, uvicorn
body = b"x" * int(sys.argv[2])
headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            lifespan="off", http="httptools", loop="uvloop", ws="none", server_header=False)
"""

WRK_SCRIPT = """
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(7)
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def exposition() -> tuple[str, list[tuple[str, str, str]]]:
    lines, keys = ["# TYPE vllm:num_requests_waiting gauge"], []
    rnd = random.Random(7)
    for n in range(NAMESPACES):
        for d in range(DGDS):
            for svc in SERVICES:
                keys.append((f"ns-{n}", f"dgd-{d}", svc))
                for p in range(PODS):
                    lines.append(f'vllm:num_requests_waiting{{namespace="ns-{n}",dgd="dgd-{d}",service="{svc}",'
                                 f'dynamo_namespace="ns-{n}-dgd-{d}",pod="dgd-{d}-{svc}-{p}",model_name="m"}} '
                                 f"{rnd.randint(0, 20)}")
    return "\n".join(lines) + "\n", keys


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


class Conn:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams, so that the load generator
    costs little next to the servers measured (both sides use it)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/json\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        code = int(lines[0].split()[1])
        length = next(int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:]) if k.lower() == b"content-length")
        return code, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def server_target(signal: str, key: tuple[str, str, str]) -> str:
    ns, dgd, svc = key
    return (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{signal}?"
            + urlencode({"labelSelector": f"dgd={dgd},service={svc}"}))


def baseline_target(mapping: SignalMapping, signal: str, key: tuple[str, str, str]) -> str:
    ns, dgd, svc = key
    return "/api/v1/query?" + urlencode(
        {"query": mapping.render(signal, {"namespace": ns, "dgd": dgd, "service": svc})})


def prometheus_queries(prom_url: str) -> float:
    """Queries Prometheus has evaluated so far (its own engine counter)."""
    with urllib.request.urlopen(prom_url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('prometheus_engine_query_duration_seconds_count{slice="inner_eval"}'):
                return float(line.split()[-1])
    return float("nan")


def value(kind: str, code: int, body: bytes) -> float:
    if code != 200:
        raise RuntimeError(f"{kind}: HTTP {code}: {body[:200]!r}")
    if kind == "ceiling":
        return float(len(body))
    doc = json.loads(body)
    if kind == "server":
        return float(parse_quantity(doc["items"][0]["value"]))
    return float(doc["data"]["result"][0]["value"][1])


async def latency(kind: str, port: int, make, keys, n: int) -> dict:
    rnd = random.Random(1)
    conn, samples = Conn("127.0.0.1", port), []
    for _ in range(50):  # warm-up
        value(kind, *await conn.get(make(rnd.choice(keys))))
    for _ in range(n):
        target = make(rnd.choice(keys))
        t = time.perf_counter()
        code, body = await conn.get(target)
        samples.append(time.perf_counter() - t)
        value(kind, code, body)
    await conn.close()
    a = np.array(samples) * 1000
    return {"requests": n, "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean())}


async def throughput(kind: str, port: int, make, keys, seconds: float, concurrency: int = 8) -> dict:
    done, errors = 0, 0
    targets = [make(k) for k in keys]
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done, errors
        rnd = random.Random(100 + i)
        conn = Conn("127.0.0.1", port)
        while time.perf_counter() < deadline:
            code, body = await conn.get(rnd.choice(targets))
            if code == 200:
                done += 1
            else:
                errors += 1
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "seconds": elapsed, "requests": done, "errors": errors,
            "rps": done / elapsed}


def throughput_wrk(port: int, targets: list[str], seconds: float, workdir: Path, concurrency: int = 8) -> dict:
    paths, script = workdir / "paths.txt", workdir / "paths.lua"
    paths.write_text("\n".join(targets) + "\n")
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script),
                          f"http://127.0.0.1:{port}", "--", str(paths)],
                         capture_output=True, text=True, check=True).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        raise RuntimeError(f"wrk socket errors against port {port}: {socket_errors.group(1)}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"concurrency": concurrency, "seconds": seconds, "requests": done - errors, "errors": errors,
            "rps": rps * (done - errors) / max(done, 1), "client": "wrk"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests per side for latency")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                    help="load generator for throughput (auto: wrk when installed)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "metrics_read.json")
    args = ap.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    if use_wrk and shutil.which("wrk") is None:
        ap.error("--client wrk: wrk is not installed (apt-get install wrk)")

    text, keys = exposition()
    mapping = SignalMapping()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="metrics-read-") as tmp, Prometheus(Path(tmp) / "prom") as prom:
        try:
            (Path(tmp) / "metrics.txt").write_text(text)
            fe_keys = sorted({(ns, dgd, "Frontend") for ns, dgd, _ in keys})
            (Path(tmp) / "frontends.json").write_text(json.dumps([k[:2] for k in fe_keys]))
            exp_port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-c", EXPORTER, str(exp_port), str(Path(tmp) / "metrics.txt"),
                                           str(Path(tmp) / "frontends.json")]))
            wait_http(f"http://127.0.0.1:{exp_port}/metrics")
            prom.set_targets("workers", [(f"127.0.0.1:{exp_port}", {})])
            prom.wait_for_targets("workers", 1)
            series = len(prom.query('{__name__="vllm:num_requests_waiting"}'))
            # rate() over the 1m window needs two scrapes of the histograms
            deadline = time.monotonic() + 30
            while not prom.query("histogram_quantile(0.95, sum by (le) (rate("
                                 "dynamo_frontend_time_to_first_token_seconds_bucket[1m])))"):
                if time.monotonic() > deadline:
                    raise RuntimeError("no TTFT histogram rates in Prometheus after 30 s")
                time.sleep(0.5)
            hist_series = len(prom.query('{__name__=~"dynamo_frontend_time_to_first_token_seconds.*"}'))
            http_port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "dynamo_scaling.cli", "--log-level", "WARNING", "metrics-server",
                 f"--prometheus-url={prom.url}", "--secure-port=0", "--grpc-port=0", f"--http-port={http_port}",
                 "--http-serves-api", "--interval=5", "--staleness=30"], cwd=REPO)  # the defaults
            procs.append(server)
            wait_http(f"http://127.0.0.1:{http_port}/readyz")
            body_size = len(urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}" + server_target("dynamo_queue_depth", keys[0])).read())
            ceiling_port = free_port()
            ceiling = subprocess.Popen([sys.executable, "-c", CEILING, str(ceiling_port), str(body_size)])
            procs.append(ceiling)
            wait_http(f"http://127.0.0.1:{ceiling_port}/")

            async def measure(kind: str, port: int, pid: int, make, keys_: list) -> dict:
                lat = await latency(kind, port, make, keys_, args.requests)
                q0, c0 = prometheus_queries(prom.url), cpu_seconds(pid)
                if use_wrk:
                    thr = await asyncio.to_thread(throughput_wrk, port, [make(k) for k in keys_], args.seconds,
                                                  Path(tmp))
                else:
                    thr = await throughput(kind, port, make, keys_, args.seconds)
                cpu = cpu_seconds(pid) - c0
                thr["prometheus_queries_per_s"] = (prometheus_queries(prom.url) - q0) / thr["seconds"]
                thr["cpu_ms_per_read"] = 1000 * cpu / max(thr["requests"], 1)
                return {"latency": lat, "throughput": thr}

            async def compare(signal: str, keys_: list, exact: bool) -> dict:
                a, b = Conn("127.0.0.1", http_port), Conn("127.0.0.1", prom.port)
                for k in keys_:  # both sides answer for every service (and agree where values are static)
                    va = value("server", *await a.get(server_target(signal, k)))
                    vb = value("baseline", *await b.get(baseline_target(mapping, signal, k)))
                    assert not exact or va == vb, (signal, k, va, vb)
                await a.close()
                await b.close()
                out = {"services": len(keys_)}
                out["server"] = await measure("server", http_port, server.pid,
                                              lambda k: server_target(signal, k), keys_)
                out["baseline_promql"] = await measure("baseline", prom.port, prom.pid,
                                                       lambda k: baseline_target(mapping, signal, k), keys_)
                srv, base = out["server"], out["baseline_promql"]
                out["speedup_throughput"] = srv["throughput"]["rps"] / max(base["throughput"]["rps"], 1e-9)
                out["speedup_p50"] = base["latency"]["p50_ms"] / srv["latency"]["p50_ms"]
                out["speedup_cpu_per_read"] = (base["throughput"]["cpu_ms_per_read"]
                                               / max(srv["throughput"]["cpu_ms_per_read"], 1e-9))
                return out

            async def run() -> dict:
                signals = {"dynamo_queue_depth": await compare("dynamo_queue_depth", keys, exact=True),
                           "dynamo_ttft_seconds_p95": await compare("dynamo_ttft_seconds_p95", fe_keys, exact=False)}
                stack = await measure("ceiling", ceiling_port, ceiling.pid,
                                      lambda k: server_target("dynamo_queue_depth", k), keys)
                return {"signals": signals, "stack_ceiling": stack}

            result = asyncio.run(run())
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
    stack = result.pop("stack_ceiling")
    result = {"series": {"gauges": series, "ttft_histograms": hist_series}, "signals": result["signals"],
              "stack_ceiling": stack, "client": "wrk" if use_wrk else "python",
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    base_best = max(r["baseline_promql"]["throughput"]["rps"] for r in result["signals"].values())
    result["speedup_bound"] = stack["throughput"]["rps"] / base_best
    print(f"{series} gauge series ({len(keys)} services), {hist_series} TTFT histogram series "
          f"({len(fe_keys)} frontends); reads of one DGD service per request; throughput client: "
          f"{result['client']}")
    print(f"{'':48}{'p50 ms':>8}{'p99 ms':>8}{'req/s (8 conns)':>17}{'CPU ms/read':>13}{'Prom q/s':>10}")

    def row(label: str, r: dict) -> None:
        t, lat = r["throughput"], r["latency"]
        print(f"{label:48}{lat['p50_ms']:>8.2f}{lat['p99_ms']:>8.2f}{t['rps']:>17.0f}"
              f"{t['cpu_ms_per_read']:>13.3f}{t['prometheus_queries_per_s']:>10.0f}")

    for signal, r in result["signals"].items():
        row(f"{signal} metrics server (cache)", r["server"])
        row(f"{signal} per-request PromQL", r["baseline_promql"])
        print(f"{signal}: throughput x{r['speedup_throughput']:.1f}, p50 x{r['speedup_p50']:.1f}, "
              f"CPU per read x{r['speedup_cpu_per_read']:.1f}")
    row("stack ceiling (constant answer, same stack)", stack)
    print(f"bound on any throughput speedup on this machine: ceiling / fastest baseline = "
          f"x{result['speedup_bound']:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
