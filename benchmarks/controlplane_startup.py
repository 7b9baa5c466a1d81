"""Time from `devcluster up` to a ready API server with cached binaries, and `down`.

Prints a table and writes benchmarks/results/controlplane_startup.json.
Usage: .venv/bin/python benchmarks/controlplane_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from devcluster import build, controlplane


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    build.ensure_binaries()  # building is not what is measured
    ups, downs = [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            controlplane.up(Path(tmp) / "plane")
            ups.append(time.monotonic() - t0)
            t0 = time.monotonic()
            controlplane.down(Path(tmp) / "plane")
            downs.append(time.monotonic() - t0)
        print(f"run {i + 1}/{args.runs}: up {ups[-1]:.1f} s, down {downs[-1]:.1f} s", flush=True)
    result = {
        "kubernetes_version": build.kubernetes_version(),
        "runs": args.runs,
        "up_seconds": {"median": statistics.median(ups), "max": max(ups), "all": ups},
        "down_seconds": {"median": statistics.median(downs), "max": max(downs), "all": downs},
        "target_up_seconds": 30.0,
    }
    out = Path(__file__).resolve().parent / "results" / "controlplane_startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n| metric | median | max |\n|---|---|---|\n| up (s) | {result['up_seconds']['median']:.1f} | "
          f"{result['up_seconds']['max']:.1f} |\n| down (s) | {result['down_seconds']['median']:.1f} | "
          f"{result['down_seconds']['max']:.1f} |\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
