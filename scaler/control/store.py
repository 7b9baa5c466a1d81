"""Persist the control state in a ConfigMap so overrides survive a planner restart."""

from __future__ import annotations

import json
import logging

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scaler.control.state import ControlState, SLATargets

log = logging.getLogger(__name__)
KEY = "control.json"


class ConfigMapStore:
    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.name = namespace, name

    def load(self, default_sla: SLATargets) -> ControlState:
        try:
            cm = self.core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return ControlState(sla=default_sla)
            raise
        raw = (cm.data or {}).get(KEY)
        if not raw:
            return ControlState(sla=default_sla)
        try:
            return ControlState.from_persisted(json.loads(raw), default_sla)
        except ValueError as exc:
            # never start from a state we cannot read without saying so
            raise RuntimeError(f"ConfigMap {self.namespace}/{self.name} key {KEY} is invalid: {exc}") from exc

    def save(self, state: ControlState) -> None:
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "dynamo-scaling-planner"}},
            "data": {KEY: json.dumps(state.to_persisted(), indent=1, sort_keys=True)},
        }
        try:
            self.core.replace_namespaced_config_map(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(self.namespace, body)

    def raw(self) -> client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def mark_migrated(self, to: str) -> None:
        """Leave the ConfigMap in place, annotated with where its state went, so it is migrated
        once and an operator sees why it is no longer read."""
        from scaler.control.policy import MIGRATED

        self.core.patch_namespaced_config_map(self.name, self.namespace,
                                              {"metadata": {"annotations": {MIGRATED: to}}})
