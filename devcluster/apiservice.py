"""The external metrics APIService of the local cluster: one server owns it at a time (ours, KEDA's
or prometheus-adapter), reached on localhost through an ExternalName Service."""

from __future__ import annotations

import base64
from pathlib import Path

APISERVICE = "v1beta1.external.metrics.k8s.io"


def manifests(namespace: str, service: str, port: int, ca_cert: Path, labels: dict[str, str] | None = None
              ) -> list[dict]:
    """The Service `namespace/service` for 127.0.0.1:`port` and the APIService pointing at it,
    trusting the serving CA in `ca_cert`."""
    meta: dict = {"name": APISERVICE}
    if labels:
        meta["labels"] = labels
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service, "namespace": namespace},
         "spec": {"type": "ExternalName", "externalName": "localhost",
                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": meta,
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                  "service": {"namespace": namespace, "name": service, "port": port},
                  "caBundle": base64.b64encode(ca_cert.read_bytes()).decode(),
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]
