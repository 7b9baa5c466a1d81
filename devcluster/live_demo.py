"""`dynamo-scaling devcluster demo`: the whole loop live on the local control plane.

Starts (or reuses) the local Kubernetes control plane, then Prometheus, real Dynamo frontend
and mocker workers behind the stand-in operator, the adapter, the external-metrics server and
the planner, and plays the scenario of `devcluster.scenario` while printing its timeline.
Needs `scripts/setup.sh --all` (Prometheus, Dynamo's live components, the control plane).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table


def missing_prerequisites() -> list[str]:
    missing = []
    if not shutil.which("prometheus"):
        missing.append("prometheus (apt-get install prometheus)")
    if importlib.util.find_spec("dynamo.frontend") is None:
        missing.append("Dynamo's frontend and mocker (devcluster/dynamo/install.sh)")
    if not shutil.which("go"):  # the binary cache is keyed by the Go version, so it is needed either way
        missing.append("the Go toolchain (go >= 1.26), to build and find the local control plane")
    return missing


def run(args: argparse.Namespace) -> int:
    from devcluster import controlplane, scenario
    from devcluster.kubectl import Kubectl
    from devcluster.stack import LiveStack, StackError

    console = Console()
    missing = missing_prerequisites()
    if missing:
        console.print("[red]error:[/red] the live demo needs " + "; ".join(missing)
                      + ". Run scripts/setup.sh --all first.")
        return 2
    state_dir = args.state_dir or controlplane.default_state_dir().parent / "demo-plane"
    console.print(f"[bold]dynamo-scaling devcluster demo[/bold]: starting the local control plane in {state_dir} "
                  "(the first run builds it from source, about 10 minutes) ...")
    state = controlplane.up(state_dir, hpa_sync_period_s=2.0)
    kubectl = Kubectl(controlplane.kubectl_path(), state.kubeconfig)
    crds = Path(__file__).resolve().parents[1] / "crds"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
    ns = args.namespace
    if kubectl.run("get", "namespace", ns, check=False).returncode != 0:
        kubectl("create", "namespace", ns)
    console.print(f"In another terminal:  [cyan]export KUBECONFIG={state.kubeconfig}; "
                  f"{controlplane.kubectl_path()} -n {ns} get dgdsa -w[/cyan]")

    def show(t: float, actor: str, what: str) -> None:
        style = "red" if "killed" in what else "green" if actor in ("kubectl", "stack", "end") else ""
        console.print(f"{t:7.1f}s  [bold]{actor:<22}[/bold] [{style}]{what}[/{style}]" if style
                      else f"{t:7.1f}s  [bold]{actor:<22}[/bold] {what}")

    workdir = Path(tempfile.mkdtemp(prefix="dynamo-scaling-demo-"))
    code = 0
    with LiveStack(workdir, state.kubeconfig, kubectl, ns, scenario.STARTUP_DELAY_S) as stack:
        try:
            result = scenario.Scenario(stack, on_event=show, chaos=not args.no_chaos).run()
        except (StackError, KeyboardInterrupt) as exc:
            console.print(f"[red]stopped:[/red] {exc or 'interrupted'}; logs in {workdir}")
            code = 1
        else:
            table = Table(title="who scaled what")
            for col in ("service", "scaled by", "peak", "final replicas"):
                table.add_column(col)
            for dgd, svc, actor in scenario.SCALED:
                table.add_row(f"{dgd}/{svc}", actor, str(result.timeline.peak.get(f"{dgd}/{svc}", "-")),
                              str(scenario.replicas(kubectl, ns, dgd, svc)))
            console.print(table)
            console.print(f"load: {result.summary.line()}")
            console.print(f"planner on decode: {result.planner_status['last_decision']['reason']}")
            console.print(f"logs of every component: {workdir}")
        finally:
            kubectl.run("-n", ns, "delete", "hpa", "llm-decode", "--ignore-not-found", check=False)
            kubectl.run("-n", ns, "delete", "dgd", "llm", "side", "--ignore-not-found", "--wait=false", check=False)
    if args.keep_cluster:
        console.print(f"control plane left running: export KUBECONFIG={state.kubeconfig}")
    else:
        controlplane.down(state_dir)
    return code
