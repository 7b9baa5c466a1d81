"""The adapter's conversion webhook for a test session's control plane: a serving certificate,
the adapter's webhook flags, and a context in which both CRDs serve v1beta1 converted by it.

The session applies crds/ with v1beta1 not served (no webhook runs by default); the context
restores exactly that, so tests outside it see the default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapter_process import AdapterProcess
from helpers import wait_for

from adapter import webhook
from devcluster import certs
from devcluster.procs import free_port

CRDS = ("dynamographdeployments.nvidia.com", "dynamographdeploymentscalingadapters.nvidia.com")


def make_serving_cert(directory: Path) -> tuple[str, certs.KeyPair]:
    """(CA PEM, key pair) for a webhook on 127.0.0.1 / localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = certs.make_ca(directory, "webhook-ca", "webhook-ca")
    pair = certs.issue(ca, directory, "webhook", "dynamo-scaling-adapter", dns=("localhost",), ips=("127.0.0.1",),
                       server=True)
    return ca.cert.read_text(), pair


def webhook_args(port: int, pair: certs.KeyPair) -> tuple[str, ...]:
    return ("--webhook-port", str(port), "--webhook-bind-address", "127.0.0.1",
            "--webhook-cert-file", str(pair.cert), "--webhook-key-file", str(pair.key))


@contextmanager
def v1beta1_served(kubectl, ca_pem: str, port: int) -> Iterator[None]:
    """Both CRDs serve v1beta1, converted by the adapter's webhook on 127.0.0.1:`port`."""
    patch = webhook.conversion_patch(ca_pem, url=f"https://127.0.0.1:{port}")
    try:
        for crd in CRDS:
            kubectl("patch", "crd", crd, "--type=json", "-p", json.dumps([
                {"op": "replace", "path": "/spec/versions/1/served", "value": True}]))
            kubectl("patch", "crd", crd, "--type=merge", "-p", json.dumps(patch))
        yield
    finally:
        for crd in CRDS:
            kubectl("patch", "crd", crd, "--type=merge", "-p",
                    json.dumps({"spec": {"conversion": {"strategy": "None", "webhook": None}}}))
            kubectl("patch", "crd", crd, "--type=json", "-p", json.dumps([
                {"op": "replace", "path": "/spec/versions/1/served", "value": False}]))
        # the next test starts on a settled API: v1beta1 gone from discovery again
        wait_for(lambda: "nvidia.com/v1beta1" not in kubectl("api-versions").split(), what="v1beta1 no longer served")


@contextmanager
def converting_adapter(cluster, kubectl, namespace: str, kubeconfig: Path, workdir: Path) -> Iterator[AdapterProcess]:
    """The adapter controller with its conversion webhook, both CRDs serving v1beta1 through it."""
    ca_pem, pair = make_serving_cert(workdir / "webhook")
    port = free_port()
    with v1beta1_served(kubectl, ca_pem, port):
        proc = AdapterProcess(cluster, namespace, kubeconfig, workdir, extra_args=webhook_args(port, pair)).start()
        try:
            yield proc
        finally:
            proc.stop()
