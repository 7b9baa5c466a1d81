"""The adapter controller's reads and writes against the API server."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adapter.leader import NotLeader
from adapter import versions as api_versions
from adapter.models import DGD, DGD_KIND, DGD_PLURAL, DGDSA_PLURAL, GROUP, parse_dgd

log = logging.getLogger(__name__)
WRITE_TIMEOUT = (5.0, 15.0)  # (connect, read) seconds of a write when no leader election bounds it


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    def __init__(self, api: client.ApiClient, component: str = "dynamo-scaling-adapter",
                 identity: str | None = None, versions: api_versions.Versions | None = None) -> None:
        # the versions the cluster serves, found once at start (discovery), read and written as such
        self.versions = versions or api_versions.Versions()
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.component, self.identity = component, identity
        # every write carries the replica in its field manager, so managedFields tell which one wrote
        self.field_manager = f"{component}/{identity}" if identity else component
        # asked right before every write (LeaseElector.write_timeout): raises NotLeader, or returns
        # the seconds the write may take before another replica could hold the lease
        self.write_guard: Callable[[], float] | None = None

    def _write_timeout(self) -> tuple[float, float]:
        """Raises NotLeader when this replica may not write now; else the write's timeout."""
        if self.write_guard is None:
            return WRITE_TIMEOUT
        budget = self.write_guard()
        return (min(WRITE_TIMEOUT[0], budget), min(WRITE_TIMEOUT[1], budget))

    # -- DGD -------------------------------------------------------------------------------
    def get_dgd(self, ns: str, name: str) -> tuple[DGD, dict] | None:
        try:
            raw = self.custom.get_namespaced_custom_object(GROUP, self.versions.dgd, ns, DGD_PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return parse_dgd(raw), raw

    def set_service_replicas(self, ns: str, dgd_name: str, service: str, replicas: int, attempts: int = 6) -> DGD:
        """JSON patch guarded by a test of the value read; re-read and retry on conflict."""
        delay = 0.05
        for _ in range(attempts):
            got = self.get_dgd(ns, dgd_name)
            if got is None:
                raise LookupError(f"DynamoGraphDeployment {ns}/{dgd_name} not found")
            raw = got[1]
            try:
                ops = api_versions.replicas_patch(raw, service, replicas)
            except LookupError as exc:
                raise LookupError(f"{exc} {ns}/{dgd_name}") from None
            timeout = self._write_timeout()  # leadership re-checked after the read, right before the patch
            try:
                raw2 = self.custom.patch_namespaced_custom_object(
                    GROUP, self.versions.dgd, ns, DGD_PLURAL, dgd_name, ops, field_manager=self.field_manager,
                    _content_type="application/json-patch+json", _request_timeout=timeout)
                return parse_dgd(raw2)
            except ApiException as exc:
                # 409: changed since read; 422 (or 500 on older servers): the `test` op failed
                if exc.status not in (409, 422, 500):
                    raise
                time.sleep(delay + secrets.randbelow(50) / 1000.0)
                delay = min(delay * 2, 1.0)
        raise RuntimeError(f"could not update {ns}/{dgd_name} after {attempts} attempts (conflicts)")

    # -- DGDSA -----------------------------------------------------------------------------
    def list_adapters(self, ns: str) -> list[dict]:
        return self.custom.list_namespaced_custom_object(GROUP, self.versions.dgdsa, ns, DGDSA_PLURAL).get("items", [])

    def create_adapter(self, ns: str, name: str, dgd: dict, service: str, replicas: int) -> None:
        body = api_versions.adapter_body(self.versions.dgdsa, name, dgd["metadata"]["name"], service, replicas,
                                         self._owner(dgd))
        self.custom.create_namespaced_custom_object(GROUP, self.versions.dgdsa, ns, DGDSA_PLURAL, body,
                                                    field_manager=self.field_manager,
                                                    _request_timeout=self._write_timeout())

    def adopt_adapter(self, ns: str, adapter: dict, dgd: dict) -> None:
        refs = adapter["metadata"].get("ownerReferences") or []
        if any(r.get("uid") == dgd["metadata"]["uid"] for r in refs):
            return
        patch = {"metadata": {"ownerReferences": [*refs, self._owner(dgd)],
                              "resourceVersion": adapter["metadata"]["resourceVersion"]}}
        self.custom.patch_namespaced_custom_object(GROUP, self.versions.dgdsa, ns, DGDSA_PLURAL,
                                                   adapter["metadata"]["name"], patch, field_manager=self.field_manager,
                                                   _request_timeout=self._write_timeout())

    def delete_adapter(self, ns: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, self.versions.dgdsa, ns, DGDSA_PLURAL, name,
                                                        _request_timeout=self._write_timeout())
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch_adapter_status(self, ns: str, name: str, status: dict) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(GROUP, self.versions.dgdsa, ns, DGDSA_PLURAL, name,
                                                              {"status": status}, field_manager=self.field_manager,
                                                              _request_timeout=self._write_timeout())
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _owner(self, dgd: dict) -> dict:
        return {"apiVersion": f"{GROUP}/{self.versions.dgd}", "kind": DGD_KIND, "name": dgd["metadata"]["name"],
                "uid": dgd["metadata"]["uid"], "controller": False, "blockOwnerDeletion": True}

    # -- events ----------------------------------------------------------------------------
    def event(self, ns: str, obj: dict, kind: str, reason: str, message: str, warning: bool = False) -> None:
        meta = obj["metadata"]
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{meta['name']}.{secrets.token_hex(6)}", namespace=ns),
            involved_object=client.V1ObjectReference(api_version=obj.get("apiVersion") or f"{GROUP}/v1alpha1", kind=kind, name=meta["name"],
                                                     namespace=ns, uid=meta.get("uid")),
            reason=reason, message=message[:1024], type="Warning" if warning else "Normal",
            first_timestamp=dt.datetime.now(dt.timezone.utc), last_timestamp=dt.datetime.now(dt.timezone.utc),
            count=1, source=client.V1EventSource(component=self.component, host=self.identity))
        try:
            self.core.create_namespaced_event(ns, body, field_manager=self.field_manager,
                                              _request_timeout=self._write_timeout())
        except NotLeader:
            log.info("event not recorded: not the leader", extra={"reason": reason})
        except ApiException as exc:
            log.warning("could not record event", extra={"reason": reason, "status": exc.status})
