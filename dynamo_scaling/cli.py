"""The single `dynamo-scaling` command.

Each component contributes its own subcommands through a `register(subparsers)` function, so
this module only knows where they live, not what they do.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dynamo_scaling import __version__
from dynamo_scaling.logs import setup_logging

# Modules that add subcommands. Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "scaler.demo.cli",
    "adapter.cli",
    "scaler.live.cli",
    "external_metrics.cli",
    "scaler.replay.cli",
    "devcluster.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynamo-scaling",
        description="Autoscaling for NVIDIA Dynamo on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"dynamo-scaling {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="text for terminals, json for log collectors",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
