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
    "scaler.service.cli",
    "external_metrics.cli",
    "scaler.replay.cli",
    "scaler.whatif.cli",
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
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # The image carries only the services; replay, demo and devcluster need extras.
            if exc.name is None or exc.name.split(".")[0] not in OPTIONAL_MODULES:
                raise
            _register_unavailable(subparsers, name, exc.name)
            continue
        module.register(subparsers)
    return parser


# Top-level modules that only optional installs provide, and how to get them.
OPTIONAL_MODULES: dict[str, str] = {
    "rich": "pip install 'dynamo-scaling[replay]'",
    "matplotlib": "pip install 'dynamo-scaling[replay]'",
    "dynamo": "pip install 'dynamo-scaling[replay]'",
    "devcluster": "a source checkout of the repository (devcluster/ is not installed)",
}


def _register_unavailable(subparsers: argparse._SubParsersAction, module: str, missing: str) -> None:
    command = {"scaler.demo.cli": "demo", "scaler.replay.cli": "replay", "devcluster.cli": "devcluster"}.get(
        module, module.rsplit(".", 2)[-2])
    hint = OPTIONAL_MODULES[missing.split(".")[0]]
    sub = subparsers.add_parser(command, help=f"(not installed: needs {hint})", add_help=False)
    sub.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(_args: argparse.Namespace) -> int:
        print(f"dynamo-scaling {command}: this install lacks the module {missing!r}; {hint}", file=sys.stderr)
        return 2

    sub.set_defaults(func=unavailable)


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
