"""Adapter controller against the real API server: latency from a scale of the adapter to the DGD
updated (p50/p99), beside the same change written to a DGD directly in the same run (so the
adapter's own overhead is the difference, free of kubectl's start-up), through kubectl and
through an API client; and the time to reconcile N adapters from a cold start.

Prints a table and writes benchmarks/results/adapter_latency.json.
Usage: .venv/bin/python benchmarks/adapter_latency.py [--samples 50] [--adapters 500]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from kubernetes import client, config

from devcluster import controlplane, launch
from devcluster.kubectl import Kubectl
from devcluster.procs import poll_until

REPO = Path(__file__).resolve().parents[1]


def start_adapter(kubeconfig: Path, ns: str, log: Path) -> launch.Process:
    """The adapter, started and ready (the cold-start clock runs from before this call)."""
    return launch.adapter(kubeconfig, ns, log, resync_period_s=30, log_level="WARNING").start(timeout_s=120)


def dgd(name: str, services: int) -> dict:
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": name},
            "spec": {"services": {f"w{i}": {"replicas": 1, "scalingAdapter": {"enabled": True}}
                                  for i in range(services)}}}


def _pct(values: list[float]) -> dict[str, float]:
    arr = np.array(values) * 1000
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--adapters", type=int, default=500)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before one wait counts as failed")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = controlplane.up(Path(tmp) / "plane")
        try:
            k = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
            k("apply", "-f", str(REPO / "crds"))
            k("wait", "--for=condition=Established", "crd", "--all")
            api = config.new_client_from_config(config_file=str(state.kubeconfig))
            custom = client.CustomObjectsApi(api)

            def replicas(name: str) -> int:
                return custom.get_namespaced_custom_object("nvidia.com", "v1alpha1", "lat", "dynamographdeployments",
                                                           name)["spec"]["services"]["w0"].get("replicas")

            # 1) a change to the DGD through the adapter, against the same change written to the DGD
            #    directly (a DGD without an adapter), by kubectl and by an API client, interleaved
            k("create", "namespace", "lat")
            k.apply(dgd("llama", 1), "lat")
            direct = dgd("direct", 1)
            direct["spec"]["services"]["w0"]["scalingAdapter"] = {"enabled": False}
            k.apply(direct, "lat")
            proc = start_adapter(state.kubeconfig, "lat", Path(tmp) / "a1.log")
            poll_until(lambda: k.run("-n", "lat", "get", "dgdsa", "llama-w0", check=False).returncode == 0,
                 args.timeout, "adapter created", 0.2)
            poll_until(lambda: replicas("llama") == 1, args.timeout, "adapter in sync", 0.2)
            paths = {
                "kubectl scale dgdsa": lambda n: k("-n", "lat", "scale", "dgdsa", "llama-w0", f"--replicas={n}"),
                "kubectl patch dgd": lambda n: k("-n", "lat", "patch", "dgd", "direct", "--type=merge", "-p",
                                                 json.dumps({"spec": {"services": {"w0": {"replicas": n}}}})),
                "client patch dgdsa/scale": lambda n: custom.patch_namespaced_custom_object_scale(
                    "nvidia.com", "v1alpha1", "lat", "dynamographdeploymentscalingadapters", "llama-w0",
                    {"spec": {"replicas": n}}),
                "client patch dgd": lambda n: custom.patch_namespaced_custom_object(
                    "nvidia.com", "v1alpha1", "lat", "dynamographdeployments", "direct",
                    {"spec": {"services": {"w0": {"replicas": n}}}}),
            }
            target = {"kubectl scale dgdsa": "llama", "kubectl patch dgd": "direct",
                      "client patch dgdsa/scale": "llama", "client patch dgd": "direct"}
            lat: dict[str, list[float]] = {name: [] for name in paths}
            for i in range(args.samples):
                want = 2 + i % 5
                for name, write in paths.items():
                    t0 = time.perf_counter()
                    write(want)
                    poll_until(lambda: replicas(target[name]) == want, args.timeout, f"{name} -> {want}")
                    lat[name].append(time.perf_counter() - t0)
                    time.sleep(0.1)  # latency of one change, not of a queue of them
                print(f"\rscale latency sample {i + 1}/{args.samples}", end="", flush=True)
            print()
            proc.stop()

            # 2) N adapters from a cold start (controller not running while they are created)
            k("create", "namespace", "many")
            per = 5
            for d in range(args.adapters // per):
                custom.create_namespaced_custom_object(
                    "nvidia.com", "v1alpha1", "many", "dynamographdeployments", dgd(f"d{d}", per))
            t0 = time.perf_counter()
            proc = start_adapter(state.kubeconfig, "many", Path(tmp) / "a2.log")

            def reconciled() -> bool:
                items = custom.list_namespaced_custom_object("nvidia.com", "v1alpha1", "many",
                                                             "dynamographdeploymentscalingadapters")["items"]
                n = sum(1 for a in items if (a.get("status") or {}).get("selector"))
                print(f"\rreconciled {n}/{args.adapters} adapters", end="", flush=True)
                return n >= args.adapters

            poll_until(reconciled, max(args.timeout, args.adapters * 0.5), "cold reconcile", 0.5)
            cold = time.perf_counter() - t0
            print()
            proc.stop()
        finally:
            controlplane.down(Path(tmp) / "plane")
    stats = {name: _pct(v) for name, v in lat.items()}
    overhead = {
        "kubectl": stats["kubectl scale dgdsa"]["p50"] - stats["kubectl patch dgd"]["p50"],
        "client": stats["client patch dgdsa/scale"]["p50"] - stats["client patch dgd"]["p50"],
    }
    result = {"samples": args.samples, "gap_between_samples_s": 0.1, "write_to_dgd_ms": stats,
              "adapter_overhead_p50_ms": overhead,
              "ratio_p50": {"kubectl": stats["kubectl scale dgdsa"]["p50"] / stats["kubectl patch dgd"]["p50"],
                            "client": stats["client patch dgdsa/scale"]["p50"] / stats["client patch dgd"]["p50"]},
              "adapters": args.adapters, "cold_reconcile_seconds": cold,
              "targets": {"p99_ms": 500, "cold_seconds": 30}}
    out = REPO / "benchmarks" / "results" / "adapter_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| path to the DGD updated | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    for name, st in stats.items():
        print(f"| {name} | {st['p50']:.1f} | {st['p99']:.1f} | {st['max']:.1f} |")
    print(f"\nadapter's own overhead (p50, same run): {overhead['kubectl']:.1f} ms through kubectl "
          f"(x{result['ratio_p50']['kubectl']:.2f}), {overhead['client']:.1f} ms through an API client "
          f"(x{result['ratio_p50']['client']:.2f})")
    print(f"{args.adapters} adapters from cold start: {cold:.1f} s (target < 30 s)\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
