"""Run the stand-in operator: `python -m devcluster.standin --kubeconfig PATH`."""

from __future__ import annotations

import argparse
import signal
import sys

from kubernetes import client, config

from dynamo_scaling.logs import setup_logging
from devcluster.standin.operator import OperatorConfig, StandinOperator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devcluster.standin", description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", default=None, help="watch one namespace (default: all)")
    p.add_argument("--startup-delay", type=float, default=2.0, metavar="SECONDS",
                   help="time from pod creation to Ready (default 2)")
    p.add_argument("--period", type=float, default=0.25, metavar="SECONDS")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    args = p.parse_args(argv)
    if args.startup_delay < 0 or args.period <= 0:
        p.error("--startup-delay must be >= 0 and --period > 0")
    setup_logging("INFO", args.log_format)
    api = config.new_client_from_config(config_file=args.kubeconfig)
    op = StandinOperator(api, OperatorConfig(args.namespace, args.startup_delay, args.period))
    signal.signal(signal.SIGTERM, lambda *_: op.stop())
    signal.signal(signal.SIGINT, lambda *_: op.stop())
    op.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
