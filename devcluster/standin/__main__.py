"""Run the stand-in operator: `python -m devcluster.standin --kubeconfig PATH`.

By default pods are backed by nothing but a start-up timer. With `--mode dynamo` each pod runs
a real Dynamo frontend or mocker worker (install them with devcluster/dynamo/install.sh), whose
logs and file-based discovery live under `--workdir`, and whose metrics endpoints are published
to `--targets-file` for Prometheus' file_sd.

With `--gpu-capacity N` (or `--capacity-configmap NS/NAME`, whose `data.gpus` is read every pass
and wins) the managed pods share N GPUs (a worker pod takes 1 unless its service's resources say
otherwise; frontends none): a pod beyond them stays Pending, PodScheduled=False, reason
Unschedulable, with nothing started for it, until GPUs free up or the capacity is raised.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from kubernetes import config

from dynamo_scaling.logs import setup_logging
from devcluster.standin.backends import PodBackend, TimerBackend
from devcluster.standin.operator import OperatorConfig, StandinOperator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devcluster.standin", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", default=None, help="watch one namespace (default: all)")
    p.add_argument("--startup-delay", type=float, default=2.0, metavar="SECONDS",
                   help="time from pod creation to Ready, or to process start in dynamo mode (default 2)")
    p.add_argument("--period", type=float, default=0.25, metavar="SECONDS")
    p.add_argument("--mode", choices=["timer", "dynamo"], default="timer",
                   help="what backs a pod: a timer, or a real Dynamo process (default timer)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="dynamo mode: logs and discovery files (default: a new temp dir)")
    p.add_argument("--targets-file", type=Path, default=None,
                   help="dynamo mode: write Prometheus file_sd targets here")
    p.add_argument("--speedup-ratio", type=float, default=1.0,
                   help="dynamo mode: how much faster than real time the mocker simulates (default 1)")
    p.add_argument("--drain-timeout", type=float, default=25.0, metavar="SECONDS",
                   help="dynamo mode: SIGKILL a draining process after this long (default 25)")
    p.add_argument("--gpu-capacity", type=int, default=None, metavar="GPUS",
                   help="GPUs the managed pods may use together; pods beyond stay Unschedulable (default: no limit)")
    p.add_argument("--capacity-configmap", default=None, metavar="NAMESPACE/NAME",
                   help="a ConfigMap whose data.gpus, when set, is the GPU capacity (changeable at run time)")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    args = p.parse_args(argv)
    if args.startup_delay < 0:
        p.error("--startup-delay: must be >= 0")
    if args.period <= 0:
        p.error("--period: must be > 0")
    if args.speedup_ratio <= 0:
        p.error("--speedup-ratio: must be > 0")
    if args.gpu_capacity is not None and args.gpu_capacity < 0:
        p.error("--gpu-capacity: must be >= 0")
    if args.capacity_configmap and args.capacity_configmap.count("/") != 1:
        p.error("--capacity-configmap: expected NAMESPACE/NAME")
    if args.mode == "timer" and (args.workdir or args.targets_file):
        p.error("--workdir and --targets-file need --mode dynamo")
    setup_logging("INFO", args.log_format)
    backend: PodBackend
    if args.mode == "dynamo":
        from devcluster.standin.dynamo_backend import DynamoBackend

        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="standin-dynamo-"))
        backend = DynamoBackend(workdir, args.targets_file, args.speedup_ratio, args.drain_timeout)
    else:
        backend = TimerBackend()
    api = config.new_client_from_config(config_file=args.kubeconfig)
    op = StandinOperator(api, OperatorConfig(args.namespace, args.startup_delay, args.period,
                                             args.gpu_capacity, args.capacity_configmap), backend)
    signal.signal(signal.SIGTERM, lambda *_: op.stop())
    signal.signal(signal.SIGINT, lambda *_: op.stop())
    op.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
