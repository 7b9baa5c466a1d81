"""`dynamo-scaling what-if`: replay a deployment's recent traffic (rebuilt from Prometheus) under
the current settings and a proposed SLA, attainment target, bounds or pin, and compare."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from dynamo_scaling.yaml_file import read_mapping

ENV_PROMETHEUS = "DYNAMO_PLANNER_PROMETHEUS_"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "what-if", help="replay a deployment's last hour under a proposed SLA or override, beside the current settings",
        description="Rebuilds the deployment's recent traffic from its frontend's Prometheus series (request "
                    "counter, ISL/OSL histograms) and replays it in Dynamo's replay engine with the predictive "
                    "planner, under the current settings and under the proposed change; prints attainment and "
                    "GPU-hours of both. Needs the replay extra.")
    p.add_argument("--prometheus-url", required=True)
    p.add_argument("--namespace", default=None, help="Kubernetes namespace of the DGD (default: the config's)")
    p.add_argument("--dgd", default=None, help="DynamoGraphDeployment name (default: the config's)")
    p.add_argument("--config", type=Path, default=None,
                   help="the planner's config file (dynamo-scaling planner --config): its planner settings, "
                        "pools, profile, signal mapping and Prometheus connection are the current settings")
    p.add_argument("--window", default="1h", help="how much recent traffic to replay: a duration (1h, 30m) or "
                                                  "seconds (default 1h)")
    p.add_argument("--step", type=float, default=60.0, metavar="S", help="resolution of the rebuilt rate (s)")
    p.add_argument("--end", default=None, help="end of the window: RFC 3339 or Unix seconds (default: now)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rebuilt trace")
    p.add_argument("--ttft-ms", type=float, default=None, help="proposed TTFT target")
    p.add_argument("--itl-ms", type=float, default=None, help="proposed ITL target")
    p.add_argument("--attainment-target", type=float, default=None, help="proposed attainment target")
    for flag, what in (("--pin", "pin the pool at N replicas (min = max = N)"), ("--min", "proposed minimum"),
                       ("--max", "proposed maximum")):
        p.add_argument(flag, action="append", default=[], metavar="POOL=N",
                       help=f"{what}; POOL is prefill, decode or the pool's DGD service; repeatable")
    p.add_argument("--json", type=Path, default=None, help="write the answer as JSON here")
    p.add_argument("--trace-out", type=Path, default=None,
                   help="write the rebuilt trace here (Mooncake JSONL, what `dynamo-scaling replay --trace` reads)")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _seconds(text: str) -> float:
    from external_metrics.signals import duration_seconds

    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if not re.fullmatch(r"(\d+(ms|s|m|h|d))+", text):
        raise ValueError(f"--window {text!r}: expected a duration such as 1h or 30m, or seconds")
    return duration_seconds(text)


def _time(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--end {text!r}: expected RFC 3339 (2026-01-01T12:00:00Z) or Unix seconds") from None
    if t.tzinfo is None:
        raise ValueError(f"--end {text!r}: give a time zone, e.g. Z")
    return t.timestamp()


def _pairs(flag: str, values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        pool, sep, n = v.partition("=")
        if not sep or not pool or not re.fullmatch(r"\d+", n.strip()):
            raise ValueError(f"{flag} {v!r}: expected POOL=N, e.g. decode=4")
        out[pool.strip()] = int(n)
    return out


def _config(path: Path | None) -> dict:
    """The planner's config file, read for what the what-if needs (either planner mode)."""
    if path is None:
        return {}
    return read_mapping(path)


def run(args: argparse.Namespace) -> int:
    from external_metrics.prom import PrometheusConnection, PrometheusError
    from external_metrics.signals import LabelNames, MappingError, SignalMapping
    from scaler.control.state import Override, SLATargets
    from scaler.planner.config import PlannerConfig
    from scaler.profile import BUNDLED_VALUE, PerformanceProfile, ProfileError, bundled_profile, wants_bundled
    from scaler.whatif.answer import Source, replay_missing, what_if
    from scaler.whatif.compare import Pools, ProposalError, settings
    from scaler.whatif.observe import NoTraffic, Window
    from scaler.whatif.rebuild import RebuildError

    missing = replay_missing()
    if missing:
        return _fail(f"dynamo-scaling what-if: {missing}")
    try:
        data = _config(args.config)
        base_dir = args.config.parent if args.config else Path.cwd()
        planner = PlannerConfig.model_validate(data.get("planner") or {})
        d = data.get("deployment") or {}
        namespace, dgd = args.namespace or d.get("namespace"), args.dgd or d.get("name")
        if not namespace or not dgd:
            return _fail("--namespace and --dgd are required (or a config whose deployment names them)")
        pools = Pools(d.get("prefill_service") or "prefill", d.get("decode_service") or "decode")
        profile_file = data.get("profile_file")
        if args.config is not None and not profile_file:
            # that planner fits its profile online, which only it holds
            return _fail(f"{args.config}: no profile_file: the planner fits its performance profile online, which "
                         "an offline what-if cannot replay with; ask the planner (POST /v1/what-if), or give "
                         f"profile_file (a profile, or {BUNDLED_VALUE!r} for Dynamo's mocker profile)")
        profile = (bundled_profile() if not profile_file or wants_bundled(base_dir / profile_file)
                   else PerformanceProfile.load(base_dir / profile_file))
        if data.get("signals_file"):
            mapping = SignalMapping.load(base_dir / data["signals_file"])
        elif data.get("signals") is not None:
            mapping = SignalMapping.from_overrides(data["signals"])
        else:
            lb = data.get("labels") or {}
            mapping = SignalMapping(labels=LabelNames(**{k: lb[k] for k in ("namespace", "dgd", "service") if k in lb}))
        connection = PrometheusConnection.model_validate(
            PrometheusConnection.env_overrides(data.get("prometheus"), ENV_PROMETHEUS))
        window = Window(_time(args.end), _seconds(args.window), args.step)
        if args.step <= 0 or window.length_s < args.step:
            return _fail("--step must be > 0 and no longer than --window")
        pins, lows, highs = _pairs("--pin", args.pin), _pairs("--min", args.min), _pairs("--max", args.max)
    except (ValueError, ValidationError, ProfileError, MappingError) as exc:
        return _fail(str(exc))

    overrides = {}
    for pool in dict.fromkeys([*pins, *lows, *highs]):
        flags = " ".join(f"--{k} {pool}={v[pool]}" for k, v in (("pin", pins), ("min", lows), ("max", highs))
                         if pool in v)
        if pools.role(pool) is None:
            return _fail(f"{flags}: {pool!r} is not a pool of this planner; use prefill, decode, "
                         f"{pools.prefill} or {pools.decode}")
        try:
            overrides[pool] = Override(replicas=pins.get(pool), min_replicas=lows.get(pool),
                                       max_replicas=highs.get(pool))
        except ValidationError as exc:
            return _fail(f"{flags}: {exc.errors()[0]['msg']}")
    try:
        current = settings(planner, pools)
        sla = None
        if args.ttft_ms is not None or args.itl_ms is not None or args.attainment_target is not None:
            sla = SLATargets(ttft_ms=current.ttft_ms if args.ttft_ms is None else args.ttft_ms,
                             itl_ms=current.itl_ms if args.itl_ms is None else args.itl_ms,
                             attainment_target=(current.attainment_target if args.attainment_target is None
                                                else args.attainment_target))
        proposed = settings(current, pools, sla, overrides, where="--pin/--min/--max")
    except ValidationError as exc:
        err = exc.errors()[0]
        return _fail(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}")
    except ProposalError as exc:
        return _fail(str(exc))

    source = Source(args.prometheus_url, namespace, dgd, mapping, connection)
    try:
        answer = what_if(source, window, profile, current, proposed, pools, args.seed, args.trace_out)
    except (NoTraffic, RebuildError, PrometheusError) as exc:
        return _fail(str(exc))
    _print(answer)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(answer, indent=2))
    return 0


def _print(answer: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    cur, new, diff = answer["current"], answer["proposed"], answer["difference"]
    w = answer["window"]
    table = Table(title=f"what-if for {answer['deployment']['namespace']}/{answer['deployment']['name']}: "
                        f"{w['start']} to {w['end']}, {answer['requests']} requests")
    for col in ("", "current", "proposed", "difference"):
        table.add_column(col)

    def fmt(v, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    def setting(s: dict) -> str:
        pools = ", ".join(f"{p} {b['min']}..{b['max']}" for p, b in s["pools"].items())
        return f"TTFT {s['ttft_ms']:g} ms, ITL {s['itl_ms']:g} ms, target {s['attainment_target']:g}; {pools}"

    table.add_row("settings", setting(cur["settings"]), setting(new["settings"]), "")
    for key, label, spec, signed in (("sla_attainment", "SLA attainment", ".3f", "+.3f"),
                                     ("feasible_attainment", "feasible attainment", ".3f", "+.3f"),
                                     ("gpu_hours", "GPU-hours", ".2f", "+.2f"),
                                     ("max_gpus", "peak GPUs", "d", "+d"),
                                     ("scale_events", "scale events", "d", ""),
                                     ("ttft_p99_ms", "TTFT p99 ms", ".0f", ""),
                                     ("itl_p99_ms", "ITL p99 ms", ".1f", "")):
        table.add_row(label, fmt(cur.get(key), spec), fmt(new.get(key), spec),
                      fmt(diff.get(key), signed) if signed else "")
    console = Console(width=max(140, Console().width))
    console.print(table)
    t = answer["timings"]
    console.print(f"Prometheus {t['prometheus_seconds']:.1f} s, replay {t['replay_seconds']:.1f} s, "
                  f"total {t['total_seconds']:.1f} s; {answer['trace']['how']}", soft_wrap=True)
