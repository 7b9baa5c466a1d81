"""`dynamo-scaling adapter`: the DGDSA controller."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

ENV = "DYNAMO_ADAPTER_"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adapter", help="DGDSA controller: carries /scale into DynamoGraphDeployments",
                              description=f"Every flag can also be set as {ENV}<FLAG> in the environment.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", default=None,
                       help="watch this namespace (repeatable); default: all namespaces")
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace (the default)")
    p.add_argument("--kubeconfig", default=os.environ.get(ENV + "KUBECONFIG"), help="default: in-cluster config")
    p.add_argument("--bind-address", default=os.environ.get(ENV + "BIND_ADDRESS", "127.0.0.1"))
    p.add_argument("--metrics-port", type=int, default=int(os.environ.get(ENV + "METRICS_PORT", "8080")))
    p.add_argument("--health-port", type=int, default=int(os.environ.get(ENV + "HEALTH_PORT", "8081")))
    p.add_argument("--leader-election", action="store_true",
                   default=os.environ.get(ENV + "LEADER_ELECTION", "") in ("1", "true"),
                   help="hold a Lease; only the leader writes (run two replicas safely)")
    p.add_argument("--leader-election-namespace", default=os.environ.get(ENV + "LEADER_ELECTION_NAMESPACE", "default"))
    p.add_argument("--leader-election-lease", default=os.environ.get(ENV + "LEADER_ELECTION_LEASE",
                                                                     "dynamo-scaling-adapter"))
    p.add_argument("--leader-election-lease-duration", type=float, metavar="SECONDS",
                   default=float(os.environ.get(ENV + "LEADER_ELECTION_LEASE_DURATION", "15")),
                   help="a standby takes the lease after seeing it unrenewed this long (default 15)")
    p.add_argument("--leader-election-renew-deadline", type=float, metavar="SECONDS",
                   default=float(os.environ.get(ENV + "LEADER_ELECTION_RENEW_DEADLINE", "10")),
                   help="a leader that has not renewed for this long stops writing; must be below the "
                        "lease duration (default 10)")
    p.add_argument("--leader-election-retry-period", type=float, metavar="SECONDS",
                   default=float(os.environ.get(ENV + "LEADER_ELECTION_RETRY_PERIOD", "2")),
                   help="between tries to take or renew the lease; must be below the renew deadline (default 2)")
    p.add_argument("--identity", default=os.environ.get(ENV + "IDENTITY") or f"{socket.gethostname()}-{os.getpid()}",
                   help="this replica's name: the Lease holder, and the suffix of the field manager "
                        "(dynamo-scaling-adapter/<identity>) on everything it writes; default <hostname>-<pid>")
    p.add_argument("--resync-period", type=float, default=float(os.environ.get(ENV + "RESYNC_PERIOD", "10")),
                   metavar="SECONDS", help="full re-list of DGDs and adapters (default 10)")
    p.add_argument("--webhook-port", type=int, default=int(os.environ.get(ENV + "WEBHOOK_PORT", "0")),
                   help="serve the conversion (/convert) and validating admission (/validate) webhooks over "
                        "HTTPS on this port; 0 = off (default)")
    p.add_argument("--webhook-bind-address", default=os.environ.get(ENV + "WEBHOOK_BIND_ADDRESS", "0.0.0.0"),
                   help="the API server must reach it (default 0.0.0.0)")
    p.add_argument("--webhook-cert-file", default=os.environ.get(ENV + "WEBHOOK_CERT_FILE"))
    p.add_argument("--webhook-key-file", default=os.environ.get(ENV + "WEBHOOK_KEY_FILE"))
    p.add_argument("--webhook-exempt-user", action="append",
                   default=[u for u in os.environ.get(ENV + "WEBHOOK_EXEMPT_USERS", "").split(",") if u],
                   help="a user (e.g. system:serviceaccount:<ns>:<sa>) that may edit adapted replicas on the "
                        "DGD directly, besides this process's own identity (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynamo_scaling.kube import api_client

    from adapter.controller import Controller
    from adapter.health import serve_health, serve_metrics
    from adapter.leader import LeaseElector, validate_periods
    from adapter.metrics import AdapterMetrics

    import logging

    # kopf logs every handled event at INFO with its whole settings object: keep warnings only
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    env_ns = os.environ.get(ENV + "NAMESPACE")
    namespaces = args.namespace or ([n for n in env_ns.split(",") if n] if env_ns and not args.all_namespaces else [])
    for flag, port in (("--metrics-port", args.metrics_port), ("--health-port", args.health_port)):
        if not 0 < port < 65536:
            print(f"error: {flag} must be 1-65535", file=sys.stderr)
            return 2
    if not args.identity or len(args.identity) > 100 or not args.identity.isprintable():
        print("error: --identity must be 1-100 printable characters (it goes into the field manager)", file=sys.stderr)
        return 2
    if args.webhook_port and not (0 < args.webhook_port < 65536 and args.webhook_cert_file and args.webhook_key_file):
        print("error: --webhook-port needs a port 1-65535, --webhook-cert-file and --webhook-key-file",
              file=sys.stderr)
        return 2
    if args.resync_period <= 0:
        print("error: --resync-period must be > 0", file=sys.stderr)
        return 2
    try:
        validate_periods(args.leader_election_lease_duration, args.leader_election_renew_deadline,
                         args.leader_election_retry_period)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api = api_client(args.kubeconfig)
    metrics = AdapterMetrics()
    is_leader = lambda: True  # noqa: E731
    elector = None
    if args.leader_election:
        elector = LeaseElector(api, args.leader_election_namespace, args.leader_election_lease, args.identity,
                               lease_s=args.leader_election_lease_duration,
                               renew_deadline_s=args.leader_election_renew_deadline,
                               retry_s=args.leader_election_retry_period)
        elector.start()
        is_leader = elector.is_leader
    ctl = Controller(api, namespaces, metrics, is_leader, resync_s=args.resync_period, identity=args.identity)
    if elector:
        ctl.kube.write_guard = elector.write_timeout  # leadership re-checked right before each write
    if args.webhook_port:
        from pathlib import Path

        from adapter import webhook

        me = webhook.own_username(api)
        exempt = {*args.webhook_exempt_user, *([me] if me else [])}
        webhook.serve(args.webhook_bind_address, args.webhook_port, Path(args.webhook_cert_file),
                      Path(args.webhook_key_file), webhook.Validator(ctl.kube, exempt))
        logging.getLogger(__name__).info("webhooks listening", extra={"port": args.webhook_port,
                                                                      "exempt": sorted(exempt)})
    stop = threading.Event()
    serve_metrics(args.bind_address, args.metrics_port, metrics.registry)
    serve_health(args.bind_address, args.health_port, ctl.ready.is_set)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # kopf runs in its own thread so that this one owns the signals and bounds the shutdown:
    # reconciles are level-triggered and idempotent, so an interrupted one is redone on restart.
    worker = threading.Thread(target=ctl.run, args=(stop,), name="kopf", daemon=True)
    worker.start()
    while worker.is_alive() and not stop.wait(0.5):
        pass
    if elector:
        elector.stop()
    worker.join(5.0)
    return 0
