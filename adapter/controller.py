"""kopf wiring: watch events trigger the level-triggered reconcilers; kopf indices keep the
DGDs, the adapters and the autoscalers aimed at each adapter, which the reconciles read instead of
the API server (every write still starts from a fresh read or carries a resourceVersion), and a
periodic resync re-runs every reconcile from those indices, which catches what single events
cannot (a DGD that appears after its adapter, an autoscaler added later, a standby that becomes
the leader, a failed write). kopf re-lists after a broken watch, so objects changed during an API
outage come back as events.

Why not kopf timers for the resync: kopf adds its finalizer to every object a timer or daemon
serves (`requires_finalizer=True` in kopf.on.timer and kopf.on.daemon), so each DGD and adapter
would get a finalizer that blocks its deletion whenever the controller is not running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import kopf
from kubernetes import client

from adapter import sync
from adapter import versions as api_versions
from adapter.kube import Kube
from adapter.metrics import AdapterMetrics
from adapter.models import DGD_PLURAL, DGDSA_PLURAL, GROUP
from adapter.reconcile import Reconciler
from adapter.scale_client import KEDA_GROUP, KEDA_PLURAL, KEDA_VERSION

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
        self.reconciler = Reconciler(self.kube, metrics=metrics, is_leader=is_leader, autoscalers=self._aimed_at,
                                     cache=self)
        self.resync_s = resync_s
        self.ready = threading.Event()
        self.registry = kopf.OperatorRegistry()
        self._indices: dict[str, kopf.Index] = {}
        self._register()

    def _safe(self, fn, body: dict) -> None:
        try:
            fn(dict(body))
        except Exception:  # one bad object must not stop the others; the resync retries it
            log.exception("reconcile failed", extra={"object": body.get("metadata", {}).get("name")})

    # the Reconciler's cache: what the watch last saw (kopf fills the indices before any handler runs)
    def dgd(self, ns: str, name: str) -> dict | None:
        return next(iter(list(self._indices["dgds"].get((ns, name), ()))), None)

    def adapters(self, ns: str) -> list[dict]:
        return list(self._indices["adapters"].get(ns, ()))

    def _aimed_at(self, ns: str, adapter: str) -> list[tuple]:
        """(kind, name, scaleTargetRef) of the HPAs and ScaledObjects aimed at the adapter."""
        return [entry for index in ("hpa_targets", "scaledobject_targets")
                for entry in list(self._indices[index].get((ns, adapter), ()))]

    def _register(self) -> None:
        reg = self.registry
        v = self.kube.versions

        @kopf.on.event(GROUP, v.dgd, DGD_PLURAL, registry=reg)
        def on_dgd(body, type, **_):
            if type != "DELETED":
                self._safe(self.reconciler.reconcile_dgd, body)

        @kopf.on.event(GROUP, v.dgdsa, DGDSA_PLURAL, registry=reg)
        def on_adapter(body, type, **_):
            if type != "DELETED":
                self._safe(self.reconciler.reconcile_adapter, body)

        # the latest body of every DGD (by namespace and name) and adapter (by namespace), as the
        # watch saw it: what the reconciles read and the resync walks
        @kopf.index(GROUP, v.dgd, DGD_PLURAL, id="dgds", registry=reg)
        def dgds(namespace, name, body, **_):
            return {(namespace, name): dict(body)}

        @kopf.index(GROUP, v.dgdsa, DGDSA_PLURAL, id="adapters", registry=reg)
        def adapters(namespace, body, **_):
            return {namespace: dict(body)}

        # who else scales an adapter, by (namespace, adapter): no LIST per reconcile
        @kopf.index("autoscaling", "v2", "horizontalpodautoscalers", id="hpa_targets", registry=reg)
        def hpa_targets(namespace, name, spec, **_):
            ref = dict(spec.get("scaleTargetRef") or {})
            target = sync.targeted_adapter(sync.HPA_KIND, ref)
            return {(namespace, target): (sync.HPA_KIND, name, ref)} if target else None

        # watched once KEDA's CRD exists; kopf discovers it when it is installed later
        @kopf.index(KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL, id="scaledobject_targets", registry=reg)
        def scaledobject_targets(namespace, name, spec, **_):
            ref = dict(spec.get("scaleTargetRef") or {})
            target = sync.targeted_adapter(sync.SCALED_OBJECT_KIND, ref)
            return {(namespace, target): (sync.SCALED_OBJECT_KIND, name, ref)} if target else None

        @kopf.on.login(registry=reg)
        def login(**kwargs):
            return connection_info(self.api) or kopf.login_via_client(**kwargs)

        @kopf.on.startup(registry=reg)
        async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs):
            settings.peering.standalone = True
            settings.posting.enabled = False
            settings.watching.server_timeout = 60
            settings.watching.reconnect_backoff = 1.0
            settings.execution.max_workers = 8
            # the indices (by their ids) are live views, filled by kopf from here on
            self._indices = {n: kwargs[n] for n in ("dgds", "adapters", "hpa_targets", "scaledobject_targets")}
            memo.resync = asyncio.create_task(self._resync_forever(settings), name="resync")

        @kopf.on.cleanup(registry=reg)
        async def stop_resync(memo: kopf.Memo, **_):
            task = memo.get("resync")
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _resync_forever(self, settings: kopf.OperatorSettings) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.resync_s)
            # a snapshot taken in the event loop, where kopf updates the indices
            for index, fn in (("dgds", self.reconciler.reconcile_dgd), ("adapters", self.reconciler.reconcile_adapter)):
                bodies = [body for store in list(self._indices[index].values()) for body in list(store)]
                for body in bodies:
                    await loop.run_in_executor(settings.execution.executor, self._safe, fn, body)

    def run(self, stop: threading.Event) -> None:
        kopf.run(registry=self.registry, standalone=True, clusterwide=not self.namespaces,
                 namespaces=self.namespaces, stop_flag=stop, ready_flag=self.ready)
