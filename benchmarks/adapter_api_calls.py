"""API calls the adapter controller makes while nothing changes: N adapters against the real
kube-apiserver, the requests counted from the API server's own `apiserver_request_total` (its
/metrics read with the admin credentials) before and after a fixed number of resync periods.
A resync pass may take longer than the period (it re-runs every reconcile one after the other),
so the adapter's own `dynamo_adapter_reconciles_total` is read too, and the requests are also
given per adapter reconcile and per full pass over the N adapters (and their DGDs).

Only the adapter writes or reads the resources counted here in steady state (DGDs, adapters,
HPAs, ScaledObjects, Events); WATCH requests are long-running and left out. Prints a table and
writes benchmarks/results/adapter_api_calls.json, one entry per --label (so a run of an older
checkout, given with --repo, sits beside the current one).

Usage: .venv/bin/python benchmarks/adapter_api_calls.py [--adapters 500] [--per-dgd 5]
       [--resync-period 5] [--periods 6] [--label after] [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from devcluster import controlplane
from devcluster.kubectl import Kubectl
from devcluster.procs import free_port, poll_until

REPO = Path(__file__).resolve().parents[1]
NS = "bench"
# (group, resource) the adapter touches; the kube-controller-manager only watches these
COUNTED = {("nvidia.com", "dynamographdeployments"), ("nvidia.com", "dynamographdeploymentscalingadapters"),
           ("autoscaling", "horizontalpodautoscalers"), ("keda.sh", "scaledobjects"), ("", "events")}


def requests(state) -> Counter:
    """Completed non-WATCH requests by (verb, resource, subresource) for the counted resources."""
    code, text = controlplane.api_get(state, "/metrics", timeout=10)
    if code != 200:
        raise RuntimeError(f"/metrics answered {code}")
    out: Counter = Counter()
    for fam in text_string_to_metric_families(text):
        if fam.name != "apiserver_request":  # the parser drops the _total suffix of counters
            continue
        for s in fam.samples:
            if not s.name.endswith("_total"):
                continue
            lb = s.labels
            if lb.get("verb") == "WATCH" or (lb.get("group", ""), lb.get("resource", "")) not in COUNTED:
                continue
            out[(lb["verb"], lb["resource"], lb.get("subresource", ""))] += s.value
    return out


def reconciles(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return next(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.name == "dynamo_adapter_reconciles_total")


# KEDA's ScaledObject resource, schema-less: enough for its LIST and WATCH to be served and counted
# (without it, the old per-reconcile LIST is a 404 outside any counted resource)
SCALEDOBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {"group": "keda.sh", "scope": "Namespaced",
             "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject",
                       "listKind": "ScaledObjectList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def dgd(name: str, services: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": name},
            "spec": {"services": {f"w{i}": {"replicas": 1, "scalingAdapter": {"enabled": True}}
                                  for i in range(services)}}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapters", type=int, default=500)
    p.add_argument("--per-dgd", type=int, default=5, help="flagged services (adapters) per DGD")
    p.add_argument("--resync-period", type=float, default=10.0)
    p.add_argument("--periods", type=int, default=6, help="resync periods counted")
    p.add_argument("--label", default="current")
    p.add_argument("--no-keda-crd", dest="keda_crd", action="store_false",
                   help="leave KEDA's ScaledObject CRD out (the default installs it)")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout whose adapter runs (default: this one)")
    args = p.parse_args()
    repo = args.repo.resolve()
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        state = controlplane.up(Path(tmp) / "plane")
        proc = None
        try:
            k = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
            k("apply", "-f", str(REPO / "crds"))
            if args.keda_crd:
                k.apply(SCALEDOBJECT_CRD)
            k("wait", "--for=condition=Established", "crd", "--all")
            k("create", "namespace", NS)
            custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(state.kubeconfig)))
            for d in range(args.adapters // args.per_dgd):
                custom.create_namespaced_custom_object("nvidia.com", "v1alpha1", NS, "dynamographdeployments",
                                                       dgd(f"d{d}", args.per_dgd))
            log = open(Path(tmp) / "adapter.log", "ab")
            metrics_port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "dynamo_scaling.cli", "--log-level", "WARNING", "adapter", "--namespace", NS,
                 "--kubeconfig", str(state.kubeconfig), "--health-port", str(free_port()),
                 "--metrics-port", str(metrics_port), "--resync-period", str(args.resync_period)],
                stdout=log, stderr=subprocess.STDOUT, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
            total = args.adapters // args.per_dgd * args.per_dgd

            def reconciled() -> bool:
                items = custom.list_namespaced_custom_object("nvidia.com", "v1alpha1", NS,
                                                             "dynamographdeploymentscalingadapters")["items"]
                return sum(1 for a in items if (a.get("status") or {}).get("selector")) >= total

            poll_until(reconciled, max(120.0, total * 0.5), "every adapter reconciled", 1.0)
            # two resyncs to settle (the first resync after start writes nothing new, but may be running)
            time.sleep(2 * args.resync_period)
            before, rec0 = requests(state), reconciles(metrics_port)
            window = args.periods * args.resync_period
            time.sleep(window)
            after, rec1 = requests(state), reconciles(metrics_port)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(15)
            controlplane.down(Path(tmp) / "plane")
    delta = after - before
    n = sum(delta.values())
    recs = rec1 - rec0
    result = {"label": args.label, "commit": commit, "adapters": total, "dgds": total // args.per_dgd,
              "keda_crd": args.keda_crd,
              "resync_period_s": args.resync_period, "periods": args.periods, "window_s": window, "requests": n,
              "requests_per_second": n / window, "adapter_reconciles": recs,
              "requests_per_adapter_reconcile": n / recs if recs else None,
              "requests_per_pass": n / recs * total if recs else None,
              "by_verb_resource": {" ".join(x for x in key if x): v for key, v in sorted(delta.items())}}
    out = REPO / "benchmarks" / "results" / "adapter_api_calls.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved[args.label] = result
    out.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"{args.label} ({commit}): {total} adapters in {total // args.per_dgd} DGDs, resync every "
          f"{args.resync_period:g} s, {args.periods} periods")
    print("| verb resource | requests | per period |\n|---|---|---|")
    for key, v in sorted(delta.items()):
        print(f"| {' '.join(x for x in key if x)} | {v:.0f} | {v / args.periods:.1f} |")
    print(f"| total | {n:.0f} | {n / args.periods:.1f} |")
    if recs:
        print(f"{recs:.0f} adapter reconciles in {window:g} s: {n / recs:.2f} requests per adapter reconcile, "
              f"{n / recs * total:.0f} per pass over the {total} adapters and their DGDs, {n / window:.1f}/s")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
