"""Decision cost of the fleet planner per DGD at scale: a real control plane with `--dgds` DGDs
(Frontend, prefill and decode services), their DGDSAs and one DynamoScalingPolicy each, spread
over `--namespaces` namespaces; a real Prometheus scraping synthetic Dynamo series for every DGD
(the frontend's request counter and its TTFT, ITL, ISL and OSL histograms, inflight and queued
requests, the workers' running and waiting requests and KV usage: every signal the planner reads),
with a request rate per DGD that drifts so decisions and writes keep happening; one planner in
fleet mode over all of them, run in this process so each DGD's step within a round is timed.

Per DGD step (observe + decide + write of one DGD within a round): p50/p99/max over `--rounds`
rounds, and what it is made of. A fleet round's shared reads (one LIST per namespace and kind,
one Prometheus query per namespace and signal, made when a DGD first needs them) are timed
apart, as the round's shared cost: the step's own time leaves them out, and the cost per DGD
is the round's wall time over its DGDs. Reported too: Prometheus queries and Kubernetes API
calls (count and time per step, by kind), the decision itself, the whole round's wall time. Baselines in the same run,
same cluster, same Prometheus: the fleet planner over one DGD (a namespace of its own), and the
single-DGD planner (`deployment:` mode) on that DGD, whose `run_once` is the same work for one DGD.

The DGDs are made Ready by this script (their status is written directly, no operator runs), so
the cluster holds only what the planner reads; replicas the planner writes show as starting.

Prints a table, writes benchmarks/results/fleet_decision.json (one entry per --label).
Usage: .venv/bin/python benchmarks/fleet_decision.py [--dgds 200] [--namespaces 4] [--rounds 6]
       [--label current]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' exporter process

from exporter_process import Exporter

from devcluster import controlplane, manifests
from devcluster.kubectl import Kubectl
from devcluster.procs import poll_until
from devcluster.prometheus import Prometheus
from external_metrics import prom as prom_module

POLICY_GROUP, POLICY_VERSION, POLICY_PLURAL = "scaling.dynamo-scaling.io", "v1alpha1", "dynamoscalingpolicies"
BASELINE_NS = "fleet-one"
TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
ITL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1]
LEN_BUCKETS = [128, 512, 2048, 8192, 32768]


# ---- the cluster's objects --------------------------------------------------------------------

def dgd_status(replicas: dict[str, int]) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"state": "successful", "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "AllReady", "message": "benchmark",
                            "lastTransitionTime": now}],
            "services": {svc: {"componentKind": "Deployment", "componentName": svc, "replicas": n,
                               "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n}
                         for svc, n in replicas.items()}}


def adapter(dgd: str, svc: str, replicas: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": {"name": f"{dgd}-{svc}"},
            "spec": {"replicas": replicas, "dgdRef": {"name": dgd, "serviceName": svc}}}


def policy(dgd: str, priority: int) -> dict:
    return {"apiVersion": f"{POLICY_GROUP}/{POLICY_VERSION}", "kind": "DynamoScalingPolicy",
            "metadata": {"name": dgd},
            "spec": {"dgdRef": {"name": dgd}, "sla": {"ttftMs": 500, "itlMs": 50}, "priority": priority}}


def create_deployment(custom: client.CustomObjectsApi, ns: str, name: str, priority: int) -> None:
    """One DGD (Frontend, prefill, decode; 1 GPU per worker), Ready, its two adapters, its policy."""
    services = manifests.disaggregated()
    for pool in ("prefill", "decode"):
        services[pool]["resources"] = {"limits": {"gpu": "1"}}
    custom.create_namespaced_custom_object("nvidia.com", "v1alpha1", ns, "dynamographdeployments",
                                           manifests.dgd(name, services))
    custom.patch_namespaced_custom_object_status(
        "nvidia.com", "v1alpha1", ns, "dynamographdeployments", name,
        {"status": dgd_status({"Frontend": 1, "prefill": 1, "decode": 1})})
    for svc in ("prefill", "decode"):
        custom.create_namespaced_custom_object("nvidia.com", "v1alpha1", ns, "dynamographdeploymentscalingadapters",
                                               adapter(name, svc, 1))
        custom.patch_namespaced_custom_object_status(
            "nvidia.com", "v1alpha1", ns, "dynamographdeploymentscalingadapters", f"{name}-{svc}",
            {"status": {"replicas": 1, "selector": f"nvidia.com/dynamo-graph-deployment-name={name},"
                                                   f"nvidia.com/dynamo-component={svc}"}})
    custom.create_namespaced_custom_object(POLICY_GROUP, POLICY_VERSION, ns, POLICY_PLURAL, policy(name, priority))


# ---- synthetic Dynamo series ------------------------------------------------------------------

class Traffic:
    """Every DGD's series, one exporter per namespace, rewritten every second: each DGD's request
    rate drifts slowly (its own phase and level), counters and histograms grow by what that rate
    served, gauges follow it."""

    def __init__(self, work: Path, deployments: dict[str, list[str]], seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.deployments = deployments
        self.level = {(ns, d): float(rng.uniform(0.5, 12.0)) for ns, ds in deployments.items() for d in ds}
        self.phase = {key: float(rng.uniform(0, 2 * math.pi)) for key in self.level}
        self.served = {key: 0.0 for key in self.level}
        # histogram sums grow by what each interval served at its latency: counters never go back
        self.sums = {key: {"ttft": 0.0, "itl": 0.0} for key in self.level}
        self.t0 = self.last = time.monotonic()
        self.exporters = {ns: Exporter(work / f"series-{ns}", self._series(ns)) for ns in deployments}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rate(self, key: tuple[str, str], t: float) -> float:
        return self.level[key] * (1.0 + 0.6 * math.sin(t / 40.0 + self.phase[key]))

    def _series(self, ns: str) -> list[dict]:
        out: list[dict] = []
        t = time.monotonic() - self.t0
        for d in self.deployments[ns]:
            key = (ns, d)
            n, r = int(self.served[key]), self.rate(key, t)
            # value x count = the running sum exactly, so the series only grow
            ttft, itl = (self.sums[key][k] / max(n, 1) for k in ("ttft", "itl"))
            fe = {"dgd": d, "service": "Frontend", "model": "m"}
            inflight = r * 0.6
            out += [
                {"name": "dynamo_frontend_requests", "type": "counter", "value": n, "labels": fe},
                {"name": "dynamo_frontend_inflight_requests", "value": round(inflight, 2), "labels": fe},
                {"name": "dynamo_frontend_queued_requests", "value": round(max(0.0, r - 8.0), 2), "labels": fe},
                {"name": "dynamo_frontend_time_to_first_token_seconds", "type": "histogram", "labels": fe,
                 "buckets": TTFT_BUCKETS, "observations": [[ttft, n]]},
                {"name": "dynamo_frontend_inter_token_latency_seconds", "type": "histogram", "labels": fe,
                 "buckets": ITL_BUCKETS, "observations": [[itl, n * 100]]},
                {"name": "dynamo_frontend_input_sequence_tokens", "type": "histogram", "labels": fe,
                 "buckets": LEN_BUCKETS, "observations": [[3000, n]]},
                {"name": "dynamo_frontend_output_sequence_tokens", "type": "histogram", "labels": fe,
                 "buckets": LEN_BUCKETS, "observations": [[100, n]]},
            ]
            for svc in ("prefill", "decode"):
                w = {"dgd": d, "service": svc, "model_name": "m"}
                out += [{"name": "vllm:num_requests_running", "value": round(inflight / 2, 2), "labels": w},
                        {"name": "vllm:num_requests_waiting", "value": round(max(0.0, r - 8.0) / 2, 2), "labels": w},
                        {"name": "vllm:kv_cache_usage_perc", "value": round(min(0.95, 0.05 * r), 3), "labels": w}]
        return out

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            for key in self.served:
                r = self.rate(key, now - self.t0)
                served = r * (now - self.last)
                self.served[key] += served
                self.sums[key]["ttft"] += (0.08 + 0.01 * r) * served
                self.sums[key]["itl"] += (0.01 + 0.001 * r) * served
            self.last = now
            for ns, exp in self.exporters.items():
                exp.set(self._series(ns))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for exp in self.exporters.values():
            exp.stop()


# ---- instrumentation: what each DGD's step spends, by kind --------------------------------------

class Meter:
    """Times each DGD's step within a round: every call of its DeploymentPlanner's `prepare`
    (policy refresh), `succeeded` and `write_policy_status` and of its loop's `plan` (observe,
    decide) and `write` adds to that DGD's entry; the Prometheus queries, Kubernetes API calls
    and decisions made meanwhile are counted and timed by kind."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._undo: list = []
        self.sinks: dict[int, dict] = {}

    def new_round(self) -> dict[int, dict]:
        self.sinks = {}
        return self.sinks

    def _sink(self) -> dict | None:
        return getattr(self._local, "sink", None)

    def _patch(self, owner, attr: str, make) -> None:
        original = getattr(owner, attr)
        setattr(owner, attr, make(original))
        self._undo.append((owner, attr, original))

    def step(self, owner, attr: str, key) -> None:
        """`owner.attr` is part of a DGD's step; `key(self_arg)` names the DGD."""
        meter = self

        def make(original):
            def timed(obj, *args, **kwargs):
                if meter._sink() is not None:  # nested in a step already being timed
                    return original(obj, *args, **kwargs)
                sink = meter.sinks.setdefault(id(key(obj)), {"calls": Counter(), "ms": defaultdict(float),
                                                            "total_ms": 0.0, "shared_ms": 0.0})
                meter._local.sink = sink
                t0 = time.perf_counter()
                try:
                    return original(obj, *args, **kwargs)
                finally:
                    sink["total_ms"] += (time.perf_counter() - t0) * 1000
                    meter._local.sink = None
            return timed
        self._patch(owner, attr, make)

    def part(self, owner, attr: str, kind) -> None:
        """`owner.attr` is counted and timed as `kind(args)` within the step running."""
        meter = self

        def make(original):
            def timed(*args, **kwargs):
                sink = meter._sink()
                if sink is None:
                    return original(*args, **kwargs)
                t0 = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    label = kind(args)
                    sink["calls"][label] += 1
                    sink["ms"][label] += (time.perf_counter() - t0) * 1000
            return timed
        self._patch(owner, attr, make)

    def shared(self, owner, attr: str) -> None:
        """`owner.attr` is a round's shared read: its time within a step is the round's, not the step's."""
        meter = self

        def make(original):
            def timed(*args, **kwargs):
                sink = meter._sink()
                t0 = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    if sink is not None:
                        sink["shared_ms"] += (time.perf_counter() - t0) * 1000
            return timed
        self._patch(owner, attr, make)

    def install(self) -> None:
        from scaler.planner.predictive import PredictivePlanner
        from scaler.service.deployment import DeploymentPlanner
        from scaler.service.loop import PlannerLoop

        for attr in ("prepare", "succeeded", "write_policy_status"):
            self.step(DeploymentPlanner, attr, lambda d: d.loop)
        for attr in ("plan", "write"):
            self.step(PlannerLoop, attr, lambda loop: loop)
        self.part(prom_module.PrometheusClient, "query", lambda a: "prometheus query")
        self.part(client.ApiClient, "call_api", api_kind)
        self.part(PredictivePlanner, "decide", lambda a: "decide")
        from scaler.service.observe import RoundReads, SignalBatch

        self.shared(RoundReads, "_list")
        self.shared(SignalBatch, "values")

    def uninstall(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


def api_kind(args) -> str:
    """`kube <verb> <plural>[ list][/<subresource>]` of an ApiClient.call_api(method, url, ...)."""
    method, url = args[1], args[2]
    parts = url.split("?")[0].split("://", 1)[-1].partition("/")[2].split("/")
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        rest = parts[parts.index("namespaces") + 2:]  # plural[/name[/subresource]]
        what = rest[0] + (" list" if len(rest) == 1 else "") + (f"/{rest[2]}" if len(rest) > 2 else "")
    else:
        what = "/".join(parts[-2:])
    return f"kube {method} {what}"


def summarise(steps: list[dict]) -> dict:
    ms = np.array([s["total_ms"] - s["shared_ms"] for s in steps])
    calls: Counter = Counter()
    spent: dict[str, float] = defaultdict(float)
    for s in steps:
        calls.update(s["calls"])
        for k, v in s["ms"].items():
            spent[k] += v
    n = len(steps)
    return {"steps": n, "shared_ms_per_step": float(np.mean([s["shared_ms"] for s in steps])), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
            "per_step": {k: {"calls": round(calls[k] / n, 3), "ms": round(spent[k] / n, 3)} for k in sorted(calls)}}


# ---- the planners, in this process ------------------------------------------------------------

PLANNER = {"interval_s": 10, "scale_down_hold_s": 0, "startup_s": 1, "peak_window_s": 0}


def service(work: Path, kubeconfig: Path, prom_url: str, body: dict):
    """A PlannerService as `dynamo-scaling planner --config` builds it, in this process."""
    from scaler.control.auth import StaticTokenAuthorizer
    from scaler.service import config as service_config
    from scaler.service.service import Options, PlannerService

    path = work / f"planner-{len(list(work.glob('planner-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"planner": PLANNER, "signals": {"preset": "dgd-labels"}, **body}))
    api = config.new_client_from_config(config_file=str(kubeconfig))
    return PlannerService(service_config.load(path), api, Options(prometheus_url=prom_url, insecure_http=True),
                          StaticTokenAuthorizer("benchmark-token-0123456789"))


def measure(svc, meter: Meter, rounds: int, gap_s: float, what: str) -> dict:
    """One warm-up round (discovery, connections, the fleet's first policy list), then `rounds`
    rounds: every DGD's step and each round's wall time."""
    svc.run_once()
    steps, walls = [], []
    for i in range(rounds):
        sinks = meter.new_round()
        t0 = time.perf_counter()
        svc.run_once()
        walls.append((time.perf_counter() - t0) * 1000)
        steps += list(sinks.values())
        print(f"{what}: round {i + 1}/{rounds}: {len(sinks)} DGDs in {walls[-1] / 1000:.2f} s",
              file=sys.stderr, flush=True)
        time.sleep(gap_s)
    errors = [d.last_error for d in svc.deployments if d.last_error]
    if errors or not svc.deployments:
        raise RuntimeError(f"{what}: {len(errors)} DGDs failed, e.g. {errors[:1]}; planned: {len(svc.deployments)}")
    out = summarise(steps)
    out["dgds"] = len(svc.deployments)
    out["round_ms"] = {"p50": float(np.percentile(walls, 50)), "max": float(max(walls)),
                       "all": [round(w, 1) for w in walls]}
    out["round_ms_per_dgd"] = out["round_ms"]["p50"] / len(svc.deployments)
    out["written_per_step"] = round(sum(v["calls"] for k, v in out["per_step"].items()
                                        if k.startswith("kube PATCH") and k.endswith("/scale")), 3)
    return out


def same_observations(svc, prom_url: str, sample: int = 5) -> dict:
    """The fleet's observations (from a round's shared reads: one LIST per namespace and kind,
    one query per signal and namespace) against an observer of its own for the same DGD (its own
    GETs and queries), read right after: equal within the drift of the synthetic rates between
    the two reads."""
    from external_metrics.prom import PrometheusClient
    from scaler.service.observe import LiveObserver

    checked, differ = 0, []
    reads = svc.fleet.reads()  # a round's, made afresh
    for d in svc.deployments[:sample]:
        d.observer.reads = reads
        try:
            fleet = d.observer.observe().observation
        finally:
            d.observer.reads = None
        own = LiveObserver(d.cfg, d.api, PrometheusClient(prom_url)).observe().observation
        pairs = [("rate", fleet.traffic.num_requests, own.traffic.num_requests),
                 ("isl", fleet.traffic.avg_isl, own.traffic.avg_isl),
                 ("ttft", fleet.traffic.avg_ttft_ms, own.traffic.avg_ttft_ms)]
        for pool in ("prefill", "decode"):
            a, b = getattr(fleet, pool), getattr(own, pool)
            pairs += [(f"{pool} queued", a.queued_requests, b.queued_requests),
                      (f"{pool} running", a.running_requests, b.running_requests),
                      (f"{pool} kv", a.kv_usage, b.kv_usage)]
        for what, a, b in pairs:
            checked += 1
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 0.1 * max(abs(a), abs(b), 1.0)):
                differ.append(f"{d.namespace}/{d.name} {what}: {a} != {b}")
    return {"compared": checked, "differ": differ}


# ---- main ------------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dgds", type=int, default=200)
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--rounds", type=int, default=6, help="fleet rounds measured (after one warm-up round)")
    p.add_argument("--baseline-rounds", type=int, default=30)
    p.add_argument("--scrape-interval", type=float, default=2.0)
    p.add_argument("--budget", type=int, default=None,
                   help="the fleet's gpu_budget (default: none, so no DGD is cut and all write freely)")
    p.add_argument("--label", default="current")
    args = p.parse_args()
    # a background job ignores SIGINT: SIGTERM too must unwind, so the cluster and exporters stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    namespaces = [f"fleet-{i}" for i in range(args.namespaces)]
    deployments = {ns: [] for ns in namespaces}
    for i in range(args.dgds):
        deployments[namespaces[i % len(namespaces)]].append(f"d{i}")
    deployments[BASELINE_NS] = ["d0"]
    result: dict = {"label": args.label, "commit": commit, "dgds": args.dgds, "namespaces": args.namespaces}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        state = controlplane.up(work / "plane")
        traffic = prom = None
        meter = Meter()
        try:
            k = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
            k("apply", "--server-side", "-f", str(REPO / "crds"))
            k("wait", "--for=condition=Established", "crd", "--all")
            custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(state.kubeconfig)))
            t0 = time.monotonic()
            made = 0
            for ns, names in deployments.items():
                k("create", "namespace", ns)
                for name in names:
                    create_deployment(custom, ns, name, priority=int(name[1:]) % 3)
                    made += 1
                    if made % 25 == 0:
                        print(f"created {made}/{args.dgds + 1} DGDs with adapters and policies "
                              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
            result["setup_s"] = time.monotonic() - t0
            traffic = Traffic(work / "series", deployments)
            prom = Prometheus(work / "prometheus", scrape_interval_s=args.scrape_interval).start()
            for ns, exp in traffic.exporters.items():
                prom.set_targets(f"series-{ns}", [(exp.address, {"namespace": ns})])
            for ns in traffic.exporters:
                prom.wait_for_targets(f"series-{ns}", 1, 60)
            want = args.dgds + 1
            poll_until(lambda: len(prom.query("rate(dynamo_frontend_requests_total[20s]) > 0")) >= want, 120,
                       f"a request rate for all {want} DGDs in Prometheus", 1.0)
            print("series in Prometheus:", len(prom.query('{dgd!=""}')), file=sys.stderr, flush=True)
            meter.install()
            fleet_cfg = {"namespaces": namespaces, "resync_s": 3600}
            if args.budget:
                fleet_cfg["gpu_budget"] = args.budget
            runs = (
                ("single_dgd", "single-DGD planner, 1 DGD",
                 {"deployment": {"name": "d0", "namespace": BASELINE_NS, "prefill_service": "prefill",
                                 "decode_service": "decode"}}, args.baseline_rounds),
                ("fleet_1", "fleet planner, 1 DGD", {"fleet": {**fleet_cfg, "namespaces": [BASELINE_NS]}},
                 args.baseline_rounds),
                ("fleet", f"fleet planner, {args.dgds} DGDs", {"fleet": fleet_cfg}, args.rounds),
            )
            for key, what, body, rounds in runs:
                svc = service(work, state.kubeconfig, prom.url, body)
                result[key] = measure(svc, meter, rounds, 1.0, what)
            meter.uninstall()
            result["fleet_vs_own_observer"] = same_observations(svc, prom.url)
        finally:
            meter.uninstall()
            if traffic:
                traffic.stop()
            if prom:
                prom.stop()
            controlplane.down(work / "plane")
    base = result["fleet_1"]
    for key in ("fleet", "single_dgd"):
        result[f"{key}_p99_ratio_to_fleet_1"] = result[key]["p99_ms"] / base["p99_ms"]
    result["target_p99_ms"] = 50
    out = REPO / "benchmarks" / "results" / "fleet_decision.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved[args.label] = result
    out.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"{args.label} ({commit}): per-DGD step (observe + decide + write) within a round")
    print("(step: its own time, without the round's shared reads; shared: their mean per step; per DGD: the "
          "round's wall time over its DGDs)")
    print("| run | DGDs | steps | step p50 ms | step p99 ms | step max ms | shared ms/step | round p50 s "
          "| per DGD ms | writes/step |\n|---|---|---|---|---|---|---|---|---|---|")
    for key in ("single_dgd", "fleet_1", "fleet"):
        r = result[key]
        print(f"| {key} | {r['dgds']} | {r['steps']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
              f"{r['shared_ms_per_step']:.1f} | {r['round_ms']['p50'] / 1000:.2f} | {r['round_ms_per_dgd']:.1f} | "
              f"{r['written_per_step']:.2f} |")
    print(f"p99 ratio fleet ({args.dgds}) / fleet (1): {result['fleet_p99_ratio_to_fleet_1']:.2f}; "
          f"target p99 < 50 ms")
    print("\nwhere a step's time goes (per step: calls, ms):")
    kinds = sorted({k for key in ("fleet_1", "fleet") for k in result[key]["per_step"]})
    print("| kind | fleet_1 calls | fleet_1 ms | fleet calls | fleet ms |\n|---|---|---|---|---|")
    for k in kinds:
        a, b = result["fleet_1"]["per_step"].get(k, {}), result["fleet"]["per_step"].get(k, {})
        print(f"| {k} | {a.get('calls', 0):g} | {a.get('ms', 0):.1f} | {b.get('calls', 0):g} | {b.get('ms', 0):.1f} |")
    same = result["fleet_vs_own_observer"]
    print(f"fleet observations against an observer of its own: {same['compared']} values compared, "
          f"{len(same['differ'])} differ {same['differ'][:3]}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
