"""`dynamo-scaling devcluster ...`: the local control plane for tests and the live demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devcluster import build, controlplane


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "devcluster", help="local Kubernetes control plane (etcd, kube-apiserver, controllers)",
        description="A real Kubernetes control plane on localhost, built from source once and cached.",
    )
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where certs, data, logs and the kubeconfig live (default: in the user cache)")
    sub = p.add_subparsers(dest="devcluster_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="build (or find in the cache) the control-plane binaries")
    b.set_defaults(func=_build)

    u = sub.add_parser("up", help="start the control plane, or reuse the running one")
    u.add_argument("--hpa-sync-period", type=float, default=15.0, metavar="SECONDS",
                   help="HPA controller sync period (default 15)")
    u.set_defaults(func=_up)

    d = sub.add_parser("down", help="stop the control plane and remove its state")
    d.set_defaults(func=_down)

    s = sub.add_parser("status", help="report whether the control plane runs, as JSON")
    s.set_defaults(func=_status)

    demo = sub.add_parser(
        "demo", help="the whole loop live: real Dynamo processes, adapter, metrics server, HPA, planner",
        description="Runs the live scenario on the local control plane (needs scripts/setup.sh --all): "
                    "load rises and falls while the adapter, the metrics server and the planner scale "
                    "real Dynamo workers, and prints a timeline and who scaled what. --state-dir "
                    "(before `demo`) defaults to a control plane of its own beside the tests' one.")
    demo.add_argument("--namespace", default="demo", help="namespace of the live demo (default demo)")
    demo.add_argument("--no-chaos", action="store_true", help="do not kill and restart components mid-scenario")
    demo.add_argument("--keep-cluster", action="store_true", help="leave the control plane running afterwards")
    demo.set_defaults(func=_demo)


def _build(args: argparse.Namespace) -> int:
    bins = build.ensure_binaries()
    print(bins.directory)
    return 0


def _up(args: argparse.Namespace) -> int:
    if args.hpa_sync_period <= 0:
        print("error: --hpa-sync-period must be > 0 seconds", file=sys.stderr)
        return 2
    state = controlplane.up(args.state_dir, hpa_sync_period_s=args.hpa_sync_period)
    kubectl = controlplane.kubectl_path()
    print(f"server:  {state.server}")
    print(f"kubectl: {kubectl}")
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from devcluster import live_demo  # rich and the live stack load only for the demo

    return live_demo.run(args)


def _down(args: argparse.Namespace) -> int:
    stopped = controlplane.down(args.state_dir)
    print("stopped" if stopped else "not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    st = controlplane.status(args.state_dir)
    print(json.dumps(st, indent=2))
    return 0 if st.get("running") else 1
