"""`dynamo-scaling metrics-server`: Dynamo scaling signals for HPA and KEDA."""

from __future__ import annotations

import argparse
import sys
import typing

from external_metrics.settings import ENV_PREFIX, Settings


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "metrics-server", help="external metrics API (HPA), KEDA metrics-api JSON and external scaler",
        description=f"Every flag can also be set as {ENV_PREFIX}<FLAG> in the environment "
                    f"(e.g. {ENV_PREFIX}PROMETHEUS_URL); flags win. Lists are comma-separated.")
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        default = field.get_default(call_default_factory=True)
        shown = ",".join(default) if isinstance(default, list) else default
        help_text = f"{field.description or ''} (default: {shown})".strip()
        if ann is bool:
            p.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            choices = typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else None
            p.add_argument(_flag(name), dest=name, default=None, choices=choices, help=help_text,
                           metavar=None if choices else name.upper())
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {n: getattr(args, n) for n in Settings.model_fields if getattr(args, n, None) is not None}
    return Settings(**given)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from pydantic import ValidationError

    from external_metrics.signals import MappingError

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _flag(str(err["loc"][0])) if err["loc"] else "settings"
            print(f"error: {loc}: {err['msg']}", file=sys.stderr)
        return 2
    from external_metrics.server import MetricsServer

    try:
        server = MetricsServer(settings)
    except MappingError as exc:
        print(f"error: --signals-file: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.run(stop)

    try:
        try:
            import uvloop  # the faster event loop when installed
        except ImportError:
            asyncio.run(main())
        else:
            uvloop.run(main())
    except OSError as exc:
        logging.getLogger(__name__).error("cannot listen", extra={"error": str(exc)})
        return 1
    return 0


