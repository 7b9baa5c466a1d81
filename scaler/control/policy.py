"""The DynamoScalingPolicy resource (one per DGD) as the planner's operator state.

The spec is the operator state (SLA, mode, pool bounds, pins), written by kubectl, GitOps and the
REST API; the status is the planner's last decision. Pydantic models at the edge map the spec to
`ControlState` and back. Writes of the spec use server-side apply with the field manager `dynamo-scaling-planner-api`: changes made through the
REST API, and what the planner writes on the same footing (the policy it creates from its config
or the old ConfigMap, an SLA taken from the DynamoGraphDeploymentRequest, removal of expired
REST pins), so that all of it stays changeable through REST until a GitOps tool or kubectl takes
a field over.

Applies never force: a REST change of a field another manager owns (a GitOps tool, kubectl) is
refused with 409 naming that manager, since a forced change would be reverted at the GitOps
tool's next sync anyway (docs/policy.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field

from scaler.control.state import (
    MAX_REPLICAS,
    ControlState,
    Override,
    SLATargets,
    utcnow,
)

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "scaling.dynamo-scaling.io", "v1alpha1", "dynamoscalingpolicies", "DynamoScalingPolicy"
API_VERSION = f"{GROUP}/{VERSION}"
REST_MANAGER = "dynamo-scaling-planner-api"
MIGRATED = f"{GROUP}/migrated-to"  # on the old ConfigMap once its state is in a policy
SLA_REQUEST_GENERATION = f"{GROUP}/sla-request-generation"
POOL = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"


class PolicyConflict(Exception):
    """A REST change the API server refused or could not make because another field manager
    owns the field (HTTP 409 to the caller)."""


# ---- the spec, as the CRD defines it (crds/scaling.dynamo-scaling.io_dynamoscalingpolicies.yaml)

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DGDRef(_Model):
    name: str = Field(min_length=1)


class SLA(_Model):
    ttft_ms: float = Field(alias="ttftMs", gt=0, le=600_000)
    itl_ms: float = Field(alias="itlMs", gt=0, le=60_000)


class PoolBounds(_Model):
    name: str = Field(pattern=POOL)
    min_replicas: int | None = Field(None, alias="minReplicas", ge=0, le=MAX_REPLICAS)
    max_replicas: int | None = Field(None, alias="maxReplicas", ge=0, le=MAX_REPLICAS)
    expires_at: dt.datetime | None = Field(None, alias="expiresAt")
    reason: str | None = Field(None, max_length=512)
    set_by: str | None = Field(None, alias="setBy")


class Pin(_Model):
    pool: str = Field(pattern=POOL)
    replicas: int = Field(ge=0, le=MAX_REPLICAS)
    expires_at: dt.datetime | None = Field(None, alias="expiresAt")
    reason: str | None = Field(None, max_length=512)
    set_by: str | None = Field(None, alias="setBy")


class Roles(_Model):
    """Which DGD service keys are the pools (fleet mode; otherwise found by subComponentType)."""

    prefill: str | None = Field(None, pattern=POOL)
    decode: str | None = Field(None, pattern=POOL)
    frontend: str | None = Field(None, pattern=POOL)


class PolicySpec(_Model):
    dgd_ref: DGDRef = Field(alias="dgdRef")
    sla: SLA
    attainment_target: float = Field(0.99, alias="attainmentTarget", gt=0, lt=1)
    priority: int = Field(0, ge=0, le=1000)
    mode: Literal["active", "advisory", "paused"] = "active"
    pools: list[PoolBounds] = Field(default_factory=list)
    pins: list[Pin] = Field(default_factory=list)
    roles: Roles | None = None

    def dump(self) -> dict:
        out = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        # no empty lists: whoever writes them would own the field and stand in others' way
        return {k: v for k, v in out.items() if v != []}


def _time(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_to_state(spec: PolicySpec, now: dt.datetime, history=None) -> ControlState:
    """The effective control state: expired pins and bounds are left out; an active pin wins over
    the pool's bounds."""
    overrides: dict[str, Override] = {}
    for b in spec.pools:
        if b.expires_at is None or now < b.expires_at:
            overrides[b.name] = Override(min_replicas=b.min_replicas, max_replicas=b.max_replicas,
                                         expires_at=b.expires_at, reason=b.reason or "",
                                         set_by=b.set_by or "")
    for p in spec.pins:
        if p.expires_at is None or now < p.expires_at:
            overrides[p.pool] = Override(replicas=p.replicas, expires_at=p.expires_at, reason=p.reason or "",
                                         set_by=p.set_by or "")
    state = ControlState(sla=SLATargets(ttft_ms=spec.sla.ttft_ms, itl_ms=spec.sla.itl_ms,
                                        attainment_target=spec.attainment_target),
                         paused=spec.mode == "paused", advisory=spec.mode == "advisory", overrides=overrides)
    if history is not None:
        state.history = history
    return state


def mode_of(state: ControlState) -> str:
    return "paused" if state.paused else "advisory" if state.advisory else "active"


def state_to_spec(state: ControlState, dgd: str, priority: int = 0) -> PolicySpec:
    """A whole spec from a control state (a new policy, or one migrated from the ConfigMap)."""
    pools, pins = [], []
    for svc, o in sorted(state.overrides.items()):
        if o.replicas is not None:
            pins.append(Pin(pool=svc, replicas=o.replicas, expires_at=o.expires_at, reason=o.reason or None, set_by=o.set_by or None))
        else:
            pools.append(PoolBounds(name=svc, min_replicas=o.min_replicas, max_replicas=o.max_replicas,
                                    expires_at=o.expires_at, reason=o.reason or None, set_by=o.set_by or None))
    return PolicySpec(dgd_ref=DGDRef(name=dgd), sla=SLA(ttft_ms=state.sla.ttft_ms, itl_ms=state.sla.itl_ms),
                      attainment_target=state.sla.attainment_target, priority=priority, mode=mode_of(state),
                      pools=pools, pins=pins)


def _pin_json(svc: str, o: Override) -> dict:
    return Pin(pool=svc, replicas=o.replicas, expires_at=o.expires_at, reason=o.reason or None,
               set_by=o.set_by or None).model_dump(mode="json", by_alias=True, exclude_none=True)


def _bounds_json(svc: str, o: Override) -> dict:
    return PoolBounds(name=svc, min_replicas=o.min_replicas, max_replicas=o.max_replicas, expires_at=o.expires_at,
                      reason=o.reason or None, set_by=o.set_by or None).model_dump(mode="json", by_alias=True, exclude_none=True)


def _upsert(items: list[dict], key: str, value: str, item: dict | None) -> list[dict]:
    out = [i for i in items if i.get(key) != value]
    return out + [item] if item is not None else out


def edit_for_change(spec: dict, before: ControlState, after: ControlState) -> tuple[dict, list[tuple[str, str]]]:
    """Apply the difference between two control states to `spec` (a field manager's apply
    configuration). Returns it and the list entries that must be gone afterwards
    (("pins"|"pools", name))."""
    spec = json.loads(json.dumps(spec))
    removed: list[tuple[str, str]] = []
    if (after.sla.ttft_ms, after.sla.itl_ms) != (before.sla.ttft_ms, before.sla.itl_ms):
        spec["sla"] = {"ttftMs": after.sla.ttft_ms, "itlMs": after.sla.itl_ms}
    if after.sla.attainment_target != before.sla.attainment_target:
        spec["attainmentTarget"] = after.sla.attainment_target
    if mode_of(after) != mode_of(before):
        spec["mode"] = mode_of(after)
    for svc in sorted(set(before.overrides) | set(after.overrides)):
        old, new = before.overrides.get(svc), after.overrides.get(svc)
        if old == new:
            continue
        pins, pools = spec.get("pins", []), spec.get("pools", [])
        if new is None:  # DELETE: the effective one goes (a pin if there is one, else the bounds)
            kind = "pins" if old.replicas is not None else "pools"
        elif new.replicas is not None:
            kind = None
            pins = _upsert(pins, "pool", svc, _pin_json(svc, new))
        else:  # bounds replace a pin of the same pool
            kind = "pins" if old is not None and old.replicas is not None else None
            pools = _upsert(pools, "name", svc, _bounds_json(svc, new))
        if kind == "pins":
            pins = _upsert(pins, "pool", svc, None)
            removed.append(("pins", svc))
        elif kind == "pools":
            pools = _upsert(pools, "name", svc, None)
            removed.append(("pools", svc))
        spec["pins"], spec["pools"] = pins, pools
    for key in ("pins", "pools"):
        if key in spec and not spec[key]:
            del spec[key]
    return spec, removed


# ---- managedFields: what one field manager owns, as an apply configuration

def _owned(fields: dict, obj: object) -> object:
    """The part of `obj` that a managedFields `fieldsV1` tree names."""
    if not isinstance(obj, (dict, list)):
        return obj
    keyed = [k for k in fields if k.startswith("k:")]
    if isinstance(obj, list):
        out = []
        for k in keyed:
            ident = json.loads(k[2:])
            for item in obj:
                if isinstance(item, dict) and all(item.get(f) == v for f, v in ident.items()):
                    part = _owned(fields[k], item)
                    out.append({**ident, **(part if isinstance(part, dict) else {})})
        return out
    out = {}
    for k, sub in fields.items():
        if not k.startswith("f:") or k[2:] not in obj:
            continue
        name = k[2:]
        out[name] = _owned(sub, obj[name]) if sub else obj[name]
    return out


def owned_by(obj: dict, manager: str, operation: str = "Apply") -> dict:
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == operation and \
                entry.get("subresource", "") == "":
            return _owned(entry.get("fieldsV1") or {}, obj)  # type: ignore[return-value]
    return {}


def owners_of_entry(obj: dict, kind: str, name: str, but: str) -> list[str]:
    """Field managers other than `but` that own list entry `name` of spec.<kind>."""
    key = "pool" if kind == "pins" else "name"
    want = f'k:{json.dumps({key: name}, separators=(",", ":"))}'
    out = []
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec", {}).get(f"f:{kind}", {})
        if entry.get("manager") != but and any(k == want for k in spec):
            out.append(entry.get("manager", "?"))
    return out


# ---- the store: load, migrate, refresh, REST changes, status

def list_policies(api: client.ApiClient, namespace: str) -> list[dict]:
    """The DynamoScalingPolicies of a namespace (fleet mode plans each of them)."""
    out = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return sorted(out.get("items") or [], key=lambda o: o["metadata"]["name"])


class PolicyStore:
    """The policy of one DGD (same name as the DGD) in the DGD's namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, dgd: str, name: str | None = None,
                 status_every_s: float = 30.0) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace, self.dgd, self.name = namespace, dgd, name or dgd
        self.status_every_s = status_every_s
        self.obj: dict | None = None
        self.generation = 0
        self.priority = 0
        self._status_sig: str | None = None
        self._status_at = 0.0
        self._conditions: dict[str, dict] = {}

    @staticmethod
    def served(api: client.ApiClient) -> bool:
        """Whether the API server serves the policy CRD (else the planner keeps its ConfigMap)."""
        try:
            client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _get(self) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _apply(self, spec: dict, manager: str, annotations: dict | None = None) -> dict:
        if annotations is None and self.obj is not None:  # keep claiming what we wrote before
            gen = (self.obj["metadata"].get("annotations") or {}).get(SLA_REQUEST_GENERATION)
            annotations = {SLA_REQUEST_GENERATION: gen} if gen else None
        body = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": self.name, "namespace": self.namespace, **({"annotations": annotations}
                                                                               if annotations else {})},
                "spec": spec}
        out = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, body, field_manager=manager, force=False,
            _content_type="application/apply-patch+yaml")
        # the client reads only a 200 body: an apply that created the policy answers 201
        return out if out is not None else self._get()

    def _take(self, obj: dict, history=None) -> ControlState:
        spec = PolicySpec.model_validate(obj.get("spec") or {})
        self.obj, self.priority = obj, spec.priority
        self.generation = obj["metadata"].get("generation", 0)  # the spec the state was taken from
        state = spec_to_state(spec, utcnow(), history)
        gen = (obj["metadata"].get("annotations") or {}).get(SLA_REQUEST_GENERATION)
        state.sla_request_generation = int(gen) if gen and gen.isdigit() else None
        return state

    def load(self, default: ControlState, configmap=None) -> ControlState:
        """The policy's state. Without a policy: the old ConfigMap's state (`configmap`: a
        ConfigMapStore) if it has one, else `default`, written as a new policy once."""
        obj = self._get()
        if obj is None:
            state, source = default, "the planner's configuration"
            if configmap is not None:
                old = configmap.load(default.sla)
                cm = configmap.raw()
                if cm is not None and not (cm.metadata.annotations or {}).get(MIGRATED):
                    state, source = old, f"ConfigMap {self.namespace}/{configmap.name}"
            now = utcnow()
            state.expire(now)
            spec = state_to_spec(state, self.dgd).dump()
            ann = {SLA_REQUEST_GENERATION: str(state.sla_request_generation)} \
                if state.sla_request_generation is not None else None
            obj = self._apply(spec, REST_MANAGER, ann)
            log.info("planning policy created", extra={"policy": self.name, "from": source})
            if source.startswith("ConfigMap"):
                configmap.mark_migrated(f"{KIND}/{self.name}")
        return self._take(obj)

    def _read_into(self, state: ControlState) -> dict | None:
        """Take the policy's current spec into `state` (in place), expired pins and bounds left
        out; the policy as read, None (state untouched) when it is gone."""
        obj = self._get()
        if obj is None:
            return None
        # status writes do not change the generation; a spec change does
        if self.obj is not None and obj["metadata"].get("generation") == self.generation:
            self.obj = obj
            state.expire(utcnow())  # same spec: only what expired since goes
        else:
            fresh = self._take(obj, state.history)
            state.sla, state.paused, state.advisory = fresh.sla, fresh.paused, fresh.advisory
            state.overrides, state.sla_request_generation = fresh.overrides, fresh.sla_request_generation
        return obj

    def _gone_note(self) -> str:
        # deleted (or pruned): plan on with the last state rather than stop
        return f"{KIND} {self.namespace}/{self.name} is gone; planning goes on with its last state"

    def refresh(self, state: ControlState) -> list[str]:
        """The leader's refresh: take the policy's current spec into `state` (in place) and remove
        expired REST pins and bounds from the spec; returns notes on those that expired. A policy
        that is gone leaves the state as it was."""
        obj = self._read_into(state)
        return [self._gone_note()] if obj is None else self._expired(obj)

    def follow(self, state: ControlState) -> list[str]:
        """A standby's refresh: the same as `refresh` in `state`, but it writes nothing. Expired
        entries are left out of the state and left in the spec, for the leader to remove."""
        obj = self._read_into(state)
        if obj is None:
            return [self._gone_note()]
        return [f"{kind[:-1]} on {name} expired (left in the policy for the leader to remove)"
                for kind, name in _expired_entries(obj, utcnow())]

    def _expired(self, obj: dict) -> list[str]:
        """Expired pins and bounds still in the spec. Those only the REST API owns are removed
        from the spec (they were REST's to begin with); those a GitOps tool or kubectl wrote stay
        there, ignored, since removing them would only be reverted at the next sync."""
        notes: list[str] = []
        gone = _expired_entries(obj, utcnow())
        if not gone:
            return notes
        mine = owned_by(obj, REST_MANAGER)
        rest_spec = mine.get("spec", {}) if isinstance(mine, dict) else {}
        drop = []
        for kind, name in gone:
            key = "pool" if kind == "pins" else "name"
            others = owners_of_entry(obj, kind, name, REST_MANAGER)
            ours = any(i.get(key) == name for i in rest_spec.get(kind, []))
            if ours and not others:
                drop.append((kind, name))
                notes.append(f"{kind[:-1]} on {name} expired and was removed from the policy")
            else:
                notes.append(f"{kind[:-1]} on {name} expired (left in the spec, owned by {', '.join(others) or '?'})")
        if drop:
            for kind, name in drop:
                key = "pool" if kind == "pins" else "name"
                rest_spec[kind] = [i for i in rest_spec.get(kind, []) if i.get(key) != name]
                if not rest_spec[kind]:
                    del rest_spec[kind]
            try:
                self._apply(rest_spec, REST_MANAGER)
            except ApiException as exc:
                log.warning("expired entries not removed from the policy", extra={"error": str(exc.reason)})
        return notes

    def save_change(self, before: ControlState, after: ControlState, manager: str = REST_MANAGER) -> ControlState:
        """Write the change between two states as `manager`, without forcing; returns the
        policy's state afterwards. Raises PolicyConflict when another manager owns what changes."""
        obj = self._get()
        if obj is None:
            raise RuntimeError(f"{KIND} {self.namespace}/{self.name} does not exist")
        mine = owned_by(obj, manager)
        spec = dict(mine.get("spec", {})) if isinstance(mine, dict) else {}
        spec["dgdRef"] = {"name": self.dgd}  # immutable: sharing it never conflicts
        spec, removed = edit_for_change(spec, before, after)
        for kind, name in removed:  # removing from an apply only drops our claim: check others first
            others = owners_of_entry(obj, kind, name, manager)
            if others:
                raise PolicyConflict(f"the {kind[:-1]} on {name} in {KIND} {self.namespace}/{self.name} is owned by "
                                     f"{', '.join(others)}; remove or change it there (e.g. in Git)")
        annotations = None
        if after.sla_request_generation is not None:
            annotations = {SLA_REQUEST_GENERATION: str(after.sla_request_generation)}
        try:
            obj = self._apply(spec, manager, annotations)
        except ApiException as exc:
            if exc.status == 409:
                raise PolicyConflict(_status_message(exc) + " (the policy's field belongs to another writer: "
                                     "change it there, e.g. in Git; docs/policy.md)") from exc
            raise
        return self._take(obj, after.history)

    # ---- status

    def write_status(self, status: dict, conditions: list[tuple[str, bool, str, str]], force: bool = False) -> bool:
        """Write the status subresource (with the resourceVersion last read, so a stale writer
        is refused) when it changed, or every `status_every_s`. Returns whether it wrote."""
        if self.obj is None:
            return False
        now = utcnow()
        conds = []
        for ctype, ok, reason, message in conditions:
            prev = self._conditions.get(ctype)
            status_s = "True" if ok else "False"
            since = prev["lastTransitionTime"] if prev and prev["status"] == status_s else _time(now)
            conds.append({"type": ctype, "status": status_s, "reason": reason, "message": message[:32000],
                          "lastTransitionTime": since,
                          "observedGeneration": self.generation})
        body = {**status, "conditions": conds, "observedGeneration": self.generation}
        sig = json.dumps({k: v for k, v in body.items() if k not in ("forecast", "lastDecision")}, sort_keys=True) + \
            json.dumps({k: v for k, v in (status.get("lastDecision") or {}).items() if k != "time"}, sort_keys=True)
        if not force and sig == self._status_sig and time.monotonic() - self._status_at < self.status_every_s:
            return False
        for attempt in (0, 1):
            patch = {"metadata": {"resourceVersion": self.obj["metadata"]["resourceVersion"]}, "status": body}
            try:
                self.obj = self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, self.namespace, PLURAL, self.name, patch)
                break
            except ApiException as exc:
                if exc.status != 409 or attempt:
                    raise
                fresh = self._get()  # someone changed the policy since: write on the new version
                if fresh is None:
                    return False
                self.obj = fresh
        self._status_sig, self._status_at = sig, time.monotonic()
        self._conditions = {c["type"]: c for c in conds}
        return True


def _expired_entries(obj: dict, now: dt.datetime) -> list[tuple[str, str]]:
    """The pins and bounds of a policy whose expiresAt has passed: ("pins"|"pools", name)."""
    spec = PolicySpec.model_validate(obj.get("spec") or {})
    gone = [("pins", p.pool) for p in spec.pins if p.expires_at is not None and now >= p.expires_at]
    return gone + [("pools", b.name) for b in spec.pools if b.expires_at is not None and now >= b.expires_at]


def _status_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)
