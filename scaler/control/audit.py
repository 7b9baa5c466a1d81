"""Every change through the override API is logged and recorded as a Kubernetes Event."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("scaler.audit")


class Audit:
    def __init__(self, api: client.ApiClient | None = None, namespace: str = "",
                 involved: dict[str, str] | None = None, component: str = "dynamo-scaling-planner") -> None:
        self.core = client.CoreV1Api(api) if api else None
        self.namespace, self.involved, self.component = namespace, involved or {}, component

    def record(self, user: str, action: str, detail: str, ok: bool = True) -> None:
        log.info("planner control change", extra={"user": user, "action": action, "detail": detail, "ok": ok})
        if not self.core or not self.involved:
            return
        now = dt.datetime.now(dt.timezone.utc)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{self.involved.get('name', 'planner')}.{secrets.token_hex(6)}",
                                         namespace=self.namespace),
            involved_object=client.V1ObjectReference(**self.involved, namespace=self.namespace),
            reason=f"Planner{action}", message=f"{detail} (by {user})"[:1024],
            type="Normal" if ok else "Warning", first_timestamp=now, last_timestamp=now, count=1,
            source=client.V1EventSource(component=self.component),
        )
        try:
            self.core.create_namespaced_event(self.namespace, event)
        except ApiException as exc:  # auditing must never break the change itself; the log has it
            log.warning("could not record event", extra={"status": exc.status, "action": action})
