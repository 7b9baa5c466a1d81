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
    p.add_argument("--tls-cert-file", type=Path, default=_env("TLS_CERT_FILE"),
                   help="serving certificate of the API (PEM), re-read when it changes; "
                        "default: self-signed at start")
    p.add_argument("--tls-private-key-file", type=Path, default=_env("TLS_PRIVATE_KEY_FILE"),
                   help="key of --tls-cert-file")
    p.add_argument("--tls-san", action="append", default=[], metavar="NAME",
                   help="extra DNS name or IP of the self-signed certificate (repeatable)")
    p.add_argument("--insecure-http", action="store_true", default=_env("INSECURE_HTTP", "") in ("1", "true"),
                   help="serve the API over plain HTTP instead of HTTPS (bearer tokens travel in the clear)")
    p.add_argument("--api-docs", action="store_true", default=_env("API_DOCS", "") in ("1", "true"),
                   help="serve /docs, /redoc and /openapi.json (to callers who may read the planner)")
    p.add_argument("--token-audience", action="append", default=_env("TOKEN_AUDIENCE", "").split(",") if
                   _env("TOKEN_AUDIENCE") else [], metavar="AUDIENCE",
                   help="accept only Kubernetes tokens issued for this audience (repeatable; default: the API "
                        "server's own audiences), e.g. from `kubectl create token --audience`")
    p.add_argument("--max-body-bytes", type=int, default=int(_env("MAX_BODY_BYTES", "65536")),
                   help="largest request body accepted; larger ones get 413 before authentication")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynamo_scaling.kube import api_client
    from scaler.control.auth import KubernetesAuthorizer, StaticTokenAuthorizer
    from scaler.live import config as cfgmod
    from scaler.live.service import LOOPBACK, Options, PlannerService, read_token_file

    if args.config is None:
        print("error: --config is required", file=sys.stderr)
        return 2
    if not 0 < args.api_port < 65536:
        print("error: --api-port must be 1-65535", file=sys.stderr)
        return 2
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        print("error: --tls-cert-file and --tls-private-key-file go together", file=sys.stderr)
        return 2
    if args.insecure_http and args.tls_cert_file:
        print("error: --insecure-http and --tls-cert-file contradict each other", file=sys.stderr)
        return 2
    if args.max_body_bytes < 1024:
        print("error: --max-body-bytes must be at least 1024", file=sys.stderr)
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
        authorizer = KubernetesAuthorizer(api, cfg.deployment.namespace, f"{cfg.deployment.name}",
                                          audiences=tuple(a for a in args.token_audience if a))
    if args.insecure_http and args.bind_address not in LOOPBACK:
        print(f"warning: the control API serves plain HTTP on {args.bind_address} (--insecure-http): "
              "bearer tokens cross the network unencrypted", file=sys.stderr)
    opts = Options(args.prometheus_url, args.api_port, args.bind_address, args.advisory,
                   tls_cert_file=args.tls_cert_file, tls_key_file=args.tls_private_key_file,
                   tls_sans=tuple(args.tls_san), insecure_http=args.insecure_http, api_docs=args.api_docs,
                   max_body_bytes=args.max_body_bytes)
    svc = PlannerService(cfg, api, opts, authorizer)
    svc.serve()
    return 0
