"""Real Dynamo frontend and mocker processes behind the stand-in operator: how long a scale-up
takes from the DGD change to the new workers registered in discovery, against the pod start-up
delay the stand-in imposes (the overhead is what our side and Dynamo's process start add), and
the resident memory of one frontend plus N workers.

Prints a table and writes benchmarks/results/live_dynamo.json.
Usage: .venv/bin/python benchmarks/live_dynamo.py [--samples 5] [--startup-delay 3] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from devcluster import controlplane, manifests
from devcluster.dynamo.processes import pids_using, registered_instances
from devcluster.kubectl import Kubectl
from devcluster.procs import poll_until
from devcluster.scenario import dgd_ready
from devcluster.stack import LiveStack

REPO = Path(__file__).resolve().parents[1]
NS = "bench"


def rss_mib(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=5, help="scale-ups 1 -> 3 decode workers")
    p.add_argument("--startup-delay", type=float, default=3.0, help="pod start-up delay of the stand-in, s")
    p.add_argument("--workers", type=int, default=8, help="workers (half prefill, half decode) for the memory figure")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = controlplane.up(Path(tmp) / "plane")
        k = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
        try:
            k("apply", "-f", str(REPO / "crds"))
            k("wait", "--for=condition=Established", "crd", "--all")
            k("create", "namespace", NS)
            with LiveStack(Path(tmp) / "stack", state.kubeconfig, k, NS, args.startup_delay) as stack:
                stack.start_standin()
                discovery = stack.standin_workdir / "discovery"
                dns = f"{NS}-llm"

                def scale(svc: str, n: int) -> None:
                    k("-n", NS, "patch", "dgd", "llm", "--type=merge", "-p",
                      json.dumps({"spec": {"services": {svc: {"replicas": n}}}}))

                k.apply([manifests.dgd("llm", manifests.disaggregated(), args.startup_delay)], NS)
                poll_until(lambda: dgd_ready(k, NS, "llm"), args.timeout, "DGD Ready", 0.2)
                seconds = []
                for i in range(args.samples):
                    t0 = time.monotonic()
                    scale("decode", 3)
                    poll_until(lambda: registered_instances(discovery, dns, "decode") == 3, args.timeout, "3 decode")
                    seconds.append(time.monotonic() - t0)
                    scale("decode", 1)
                    poll_until(lambda: registered_instances(discovery, dns, "decode") == 1, args.timeout, "1 decode")
                    poll_until(lambda: dgd_ready(k, NS, "llm"), args.timeout, "DGD Ready", 0.2)
                    print(f"\rscale-up sample {i + 1}/{args.samples}: {seconds[-1]:.2f} s", end="", flush=True)
                print()
                half = max(1, args.workers // 2)
                scale("decode", half)
                scale("prefill", half)
                poll_until(lambda: registered_instances(discovery, dns, "decode") == half
                     and registered_instances(discovery, dns, "prefill") == half, args.timeout, "all workers")
                time.sleep(2)  # let the newest processes finish their start-up allocations
                rss = rss_mib(pids_using(discovery))
        finally:
            controlplane.down(Path(tmp) / "plane")
    arr = np.array(seconds)
    result = {
        "startup_delay_s": args.startup_delay,
        "scale_up_to_registered_s": {"p50": float(np.median(arr)), "max": float(arr.max()), "samples": seconds},
        "overhead_over_delay_s": float(np.median(arr)) - args.startup_delay,
        "ratio_to_delay": float(np.median(arr)) / args.startup_delay if args.startup_delay else None,
        "processes": len(rss), "rss_total_mib": sum(rss.values()),
        "rss_per_process_mib": sorted(round(v, 1) for v in rss.values()),
    }
    out = REPO / "benchmarks" / "results" / "live_dynamo.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"| figure | value |\n|---|---|\n"
          f"| decode 1 -> 3 registered, median of {args.samples} | {np.median(arr):.2f} s "
          f"(start-up delay {args.startup_delay:g} s: +{result['overhead_over_delay_s']:.2f} s) |\n"
          f"| RSS of {len(rss)} processes (1 frontend + {2 * half} workers) | {result['rss_total_mib']:.0f} MiB |\n"
          f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
