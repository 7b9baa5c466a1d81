"""`dynamo-scaling adapter`: the DGDSA controller."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from adapter.settings import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    add_flags,
    given_flags,
    load,
)

# flags whose name differs from the field (repeatable ones are singular)
FLAG_NAMES = {"webhook_exempt_users": "--webhook-exempt-user"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adapter", help="DGDSA controller: carries /scale into DynamoGraphDeployments",
                              description=f"Every flag can also be set as {ENV_PREFIX}<FLAG> in the environment "
                                          f"(e.g. {ENV_PREFIX}METRICS_PORT; lists comma-separated) or as a key of "
                                          "--config-file (YAML or JSON); flags win over the environment, which wins "
                                          "over the file.")
    add_flags(p, Settings, ENV_PREFIX, FLAG_NAMES)
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = given_flags(args, Settings)
    # a namespace flag and --all-namespaces on one command line contradict each other; either one
    # given as a flag overrides the other wherever it came from
    if flags.get("namespace") and flags.get("all_namespaces"):
        raise SettingsError("--namespace and --all-namespaces contradict each other")
    if flags.get("namespace"):
        flags["all_namespaces"] = False
    elif flags.get("all_namespaces"):
        flags["namespace"] = []
    return load(Settings, flags, ENV_PREFIX, FLAG_NAMES)


def run(args: argparse.Namespace) -> int:
    import logging

    from adapter.controller import Controller
    from adapter.health import serve_health, serve_metrics
    from adapter.leader import LeaseElector
    from adapter.metrics import AdapterMetrics
    from dynamo_scaling.kube import api_client

    # kopf logs every handled event at INFO with its whole settings object: keep warnings only
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        cfg = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api = api_client(str(cfg.kubeconfig) if cfg.kubeconfig else None)
    metrics = AdapterMetrics()
    is_leader = lambda: True
    elector = None
    if cfg.leader_election:
        elector = LeaseElector(api, cfg.leader_election_namespace, cfg.leader_election_lease, cfg.identity,
                               lease_s=cfg.leader_election_lease_duration,
                               renew_deadline_s=cfg.leader_election_renew_deadline,
                               retry_s=cfg.leader_election_retry_period)
        elector.start()
        is_leader = elector.is_leader
    ctl = Controller(api, cfg.namespaces, metrics, is_leader, resync_s=cfg.resync_period, identity=cfg.identity)
    if elector:
        ctl.kube.write_guard = elector.write_timeout  # leadership re-checked right before each write
    if cfg.webhook_port:
        from adapter import webhook

        me = webhook.own_username(api)
        exempt = {*cfg.webhook_exempt_users, *([me] if me else [])}
        webhook.serve(cfg.webhook_bind_address, cfg.webhook_port, cfg.webhook_cert_file, cfg.webhook_key_file,
                      webhook.Validator(ctl.kube, exempt))
        logging.getLogger(__name__).info("webhooks listening", extra={"port": cfg.webhook_port,
                                                                      "exempt": sorted(exempt)})
    stop = threading.Event()
    serve_metrics(cfg.bind_address, cfg.metrics_port, metrics.registry)
    serve_health(cfg.bind_address, cfg.health_port, ctl.ready.is_set)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # kopf runs in its own thread so that this one owns the signals and bounds the shutdown:
    # reconciles are level-triggered and idempotent, so an interrupted one is redone on restart.
    worker = threading.Thread(target=ctl.run, args=(stop,), name="kopf", daemon=True)
    worker.start()
    while worker.is_alive() and not stop.wait(0.5):
        pass
    worker.join(5.0)
    if elector and not worker.is_alive():
        elector.release()  # no reconcile runs any more: the lease goes free for a standby at once
    elif elector:
        elector.stop()  # a reconcile still running: the lease is left to expire
    return 0
