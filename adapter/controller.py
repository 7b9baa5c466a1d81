"""kopf wiring: watch events trigger the level-triggered reconcilers; a resync loop catches what
events cannot (a DGD that appears after its adapter, a missed event during an API outage)."""

from __future__ import annotations

import logging
import threading

import kopf
from kubernetes import client

from adapter.kube import Kube
from adapter.metrics import AdapterMetrics
from adapter import versions as api_versions
from adapter.models import DGD_PLURAL, DGDSA_PLURAL, GROUP
from adapter.reconcile import Reconciler

log = logging.getLogger(__name__)


def connection_info(api: client.ApiClient) -> kopf.ConnectionInfo | None:
    """kopf's credentials from the same client configuration the controller uses."""
    cfg = api.configuration
    if not cfg.host:
        return None
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken") or ""
    scheme, _, token = auth.partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host, ca_path=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file, private_key_path=cfg.key_file,
        scheme=scheme or None, token=token or None,
    )


class Controller:
    def __init__(self, api: client.ApiClient, namespaces: list[str], metrics: AdapterMetrics,
                 is_leader=lambda: True, resync_s: float = 10.0, identity: str | None = None,
                 versions: api_versions.Versions | None = None) -> None:
        self.api, self.namespaces = api, namespaces
        self.kube = Kube(api, identity=identity, versions=versions or api_versions.discover(api))
        self.reconciler = Reconciler(self.kube, metrics=metrics, is_leader=is_leader)
        self.resync_s = resync_s
        self.ready = threading.Event()
        self.registry = kopf.OperatorRegistry()
        self._register()

    def _safe(self, fn, body: dict) -> None:
        try:
            fn(dict(body))
        except Exception:  # one bad object must not stop the others; the resync retries it
            log.exception("reconcile failed", extra={"object": body.get("metadata", {}).get("name")})

    def _register(self) -> None:
        reg = self.registry

        v = self.kube.versions

        @kopf.on.event(GROUP, v.dgd, DGD_PLURAL, registry=reg)
        def on_dgd(body, type, **_):  # noqa: A002
            if type != "DELETED":
                self._safe(self.reconciler.reconcile_dgd, body)

        @kopf.on.event(GROUP, v.dgdsa, DGDSA_PLURAL, registry=reg)
        def on_adapter(body, type, **_):  # noqa: A002
            if type != "DELETED":
                self._safe(self.reconciler.reconcile_adapter, body)

        @kopf.on.login(registry=reg)
        def login(**kwargs):
            return connection_info(self.api) or kopf.login_via_client(**kwargs)

        @kopf.on.startup(registry=reg)
        def configure(settings: kopf.OperatorSettings, **_):
            settings.peering.standalone = True
            settings.posting.enabled = False
            settings.watching.server_timeout = 60
            settings.watching.reconnect_backoff = 1.0
            settings.execution.max_workers = 8
            # react to each change at once: the default batching window delays every scale
            settings.batching.batch_window = 0.01

    def resync_once(self) -> None:
        custom, v = self.kube.custom, self.kube.versions
        for plural, version, fn in ((DGD_PLURAL, v.dgd, self.reconciler.reconcile_dgd),
                                    (DGDSA_PLURAL, v.dgdsa, self.reconciler.reconcile_adapter)):
            if self.namespaces:
                items = [i for ns in self.namespaces
                         for i in custom.list_namespaced_custom_object(GROUP, version, ns, plural)["items"]]
            else:
                items = custom.list_cluster_custom_object(GROUP, version, plural)["items"]
            for item in items:
                self._safe(fn, item)

    def resync_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.resync_s):
            try:
                self.resync_once()
            except Exception as exc:
                log.warning("resync failed", extra={"error": str(exc)[:300]})

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=self.resync_forever, args=(stop,), daemon=True, name="resync").start()
        kopf.run(registry=self.registry, standalone=True, clusterwide=not self.namespaces,
                 namespaces=self.namespaces, stop_flag=stop, ready_flag=self.ready)
