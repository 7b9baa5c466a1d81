"""`dynamo-scaling planner --config FILE`: the predictive planner against a live deployment."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ENV = "DYNAMO_PLANNER_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV + name, default)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("planner", help="predictive SLA planner for one DynamoGraphDeployment",
                              description="Forecasts load and sets prefill/decode replicas through DGDSA /scale. "
                                          f"Every flag can also be set as {ENV}<FLAG> in the environment.")
    p.add_argument("--config", type=Path, default=_env("CONFIG"), help="YAML config (deployment, planner, profile)")
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG"), help="default: in-cluster, then ~/.kube/config")
    p.add_argument("--prometheus-url", default=_env("PROMETHEUS_URL", "http://127.0.0.1:9090"))
    p.add_argument("--api-port", type=int, default=int(_env("API_PORT", "8085")))
    p.add_argument("--bind-address", default=_env("BIND_ADDRESS", "127.0.0.1"),
                   help="address of the control API (default 127.0.0.1)")
    p.add_argument("--advisory", action="store_true", default=_env("ADVISORY", "") in ("1", "true"),
                   help="compute and publish decisions without writing them")
    p.add_argument("--static-token-file", type=Path, default=_env("STATIC_TOKEN_FILE"),
                   help="accept this one bearer token with full access instead of Kubernetes tokens (local use)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynamo_scaling.kube import api_client
    from scaler.control.auth import KubernetesAuthorizer, StaticTokenAuthorizer
    from scaler.live import config as cfgmod
    from scaler.live.service import Options, PlannerService, read_token_file

    if args.config is None:
        print("error: --config is required", file=sys.stderr)
        return 2
    if not 0 < args.api_port < 65536:
        print("error: --api-port must be 1-65535", file=sys.stderr)
        return 2
    try:
        cfg = cfgmod.load(Path(args.config))
    except cfgmod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api = api_client(args.kubeconfig)
    static = os.environ.get(ENV + "STATIC_TOKEN")  # from a Secret; never on the command line
    if args.static_token_file or static:
        authorizer = StaticTokenAuthorizer(read_token_file(args.static_token_file) if args.static_token_file
                                           else static.strip())
    else:
        authorizer = KubernetesAuthorizer(api, cfg.deployment.namespace, f"{cfg.deployment.name}")
    if args.bind_address not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the control API listens on {args.bind_address}; terminate TLS in front of it",
              file=sys.stderr)
    svc = PlannerService(cfg, api, Options(args.prometheus_url, args.api_port, args.bind_address, args.advisory),
                         authorizer)
    svc.serve()
    return 0
