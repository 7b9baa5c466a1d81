"""Adapter controller against the real API server: latency from `kubectl scale` to the DGD
updated (p50/p99), and the time to reconcile N adapters from a cold start.

Prints a table and writes benchmarks/results/adapter_latency.json.
Usage: .venv/bin/python benchmarks/adapter_latency.py [--samples 50] [--adapters 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from kubernetes import client, config

from devcluster import controlplane
from devcluster.kubectl import Kubectl
from devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[1]


def start_adapter(kubeconfig: Path, ns: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dynamo_scaling.cli", "--log-level", "WARNING", "adapter",
                             "--namespace", ns, "--kubeconfig", str(kubeconfig), "--health-port", str(free_port()),
                             "--metrics-port", str(free_port()), "--resync-period", "30"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=REPO)


def dgd(name: str, services: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": name},
            "spec": {"services": {f"w{i}": {"replicas": 1, "scalingAdapter": {"enabled": True}}
                                  for i in range(services)}}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--adapters", type=int, default=500)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = controlplane.up(Path(tmp) / "plane")
        try:
            k = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
            k("apply", "-f", str(REPO / "crds"))
            k("wait", "--for=condition=Established", "crd", "--all")
            api = config.new_client_from_config(config_file=str(state.kubeconfig))
            custom = client.CustomObjectsApi(api)

            # 1) kubectl scale -> DGD updated
            k("create", "namespace", "lat")
            k.apply(dgd("llama", 1), "lat")
            proc = start_adapter(state.kubeconfig, "lat", Path(tmp) / "a1.log")
            while k.run("-n", "lat", "get", "dgdsa", "llama-w0", check=False).returncode:
                time.sleep(0.2)
            time.sleep(2)
            lat = []
            for i in range(args.samples):
                want = 2 + i % 5
                t0 = time.perf_counter()
                k("-n", "lat", "scale", "dgdsa", "llama-w0", f"--replicas={want}")
                while custom.get_namespaced_custom_object("nvidia.com", "v1alpha1", "lat", "dynamographdeployments",
                                                          "llama")["spec"]["services"]["w0"]["replicas"] != want:
                    time.sleep(0.005)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.3)  # latency of one change, not of a queue of them
                print(f"\rscale latency sample {i + 1}/{args.samples}", end="", flush=True)
            print()
            proc.terminate()
            proc.wait(15)

            # 2) N adapters from a cold start (controller not running while they are created)
            k("create", "namespace", "many")
            per = 5
            for d in range(args.adapters // per):
                custom.create_namespaced_custom_object(
                    "nvidia.com", "v1alpha1", "many", "dynamographdeployments", dgd(f"d{d}", per))
            t0 = time.perf_counter()
            proc = start_adapter(state.kubeconfig, "many", Path(tmp) / "a2.log")
            n = 0
            while n < args.adapters:
                items = custom.list_namespaced_custom_object("nvidia.com", "v1alpha1", "many",
                                                             "dynamographdeploymentscalingadapters")["items"]
                n = sum(1 for a in items if (a.get("status") or {}).get("selector"))
                print(f"\rreconciled {n}/{args.adapters} adapters", end="", flush=True)
                time.sleep(0.5)
            cold = time.perf_counter() - t0
            print()
            proc.terminate()
            proc.wait(15)
        finally:
            controlplane.down(Path(tmp) / "plane")
    arr = np.array(lat) * 1000
    result = {"samples": len(lat), "scale_to_dgd_ms": {"p50": float(np.percentile(arr, 50)),
                                                       "p99": float(np.percentile(arr, 99)), "max": float(arr.max())},
              "kubectl_scale_includes_process_start": True, "gap_between_samples_s": 0.3,
              "adapters": args.adapters, "cold_reconcile_seconds": cold,
              "targets": {"p99_ms": 500, "cold_seconds": 30}}
    out = REPO / "benchmarks" / "results" / "adapter_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"| metric | value | target |\n|---|---|---|\n"
          f"| kubectl scale -> DGD p50 | {result['scale_to_dgd_ms']['p50']:.0f} ms | |\n"
          f"| kubectl scale -> DGD p99 | {result['scale_to_dgd_ms']['p99']:.0f} ms | < 500 ms |\n"
          f"| {args.adapters} adapters from cold start | {cold:.1f} s | < 30 s |\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
