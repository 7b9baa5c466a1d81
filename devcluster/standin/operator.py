"""The reconcile loop of the stand-in operator.

Level-triggered and polling (every `period_s`): each pass lists DGDs and stand-in pods and
moves the world one step toward the spec. Simple, restart-safe, and fast enough for tests.

Optionally it also plays the scheduler for a cluster of limited GPUs (`gpu_capacity`, or a
ConfigMap read every pass so a test can change it at run time): a pod that does not fit is
created unbound and left Pending with PodScheduled=False, reason Unschedulable, as the real
scheduler leaves it, and nothing backs it; it is bound (pods/binding) once GPUs free up.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import shlex
import threading
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.controlplane import NODE_NAME
from devcluster.standin.backends import PodBackend, PodInfo, TimerBackend

log = logging.getLogger(__name__)

GROUP, VERSION, DGD_PLURAL = "nvidia.com", "v1alpha1", "dynamographdeployments"
LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
LABEL_COMPONENT_TYPE = "nvidia.com/dynamo-component-type"
LABEL_SUB_COMPONENT_TYPE = "nvidia.com/dynamo-sub-component-type"
LABEL_NAMESPACE = "nvidia.com/dynamo-namespace"
LABEL_MANAGED = "devcluster.dynamo-scaling.io/standin"
ANNOTATION_STARTUP = "devcluster.dynamo-scaling.io/startup-delay-seconds"
# extra arguments for the process behind each pod of a service (dynamo mode), on the DGD:
#   devcluster.dynamo-scaling.io/args-decode: "--num-gpu-blocks-override 256"
ANNOTATION_ARGS_PREFIX = "devcluster.dynamo-scaling.io/args-"
ANNOTATION_POD_ARGS = "devcluster.dynamo-scaling.io/args"
ANNOTATION_GPUS = "devcluster.dynamo-scaling.io/gpus"  # on each pod: the GPUs it takes from the capacity
CAPACITY_KEY = "gpus"  # in the capacity ConfigMap: the cluster's worker GPUs
# what kube-scheduler says about a pod no node has room for
UNSCHEDULABLE_MESSAGE = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
NO_GPU_TYPES = ("frontend", "planner", "epp")  # components that run on no GPU unless their resources say so
POD_GRACE_S = 30


@dataclass
class OperatorConfig:
    namespace: str | None = None  # None: all namespaces
    startup_delay_s: float = 2.0
    period_s: float = 0.25
    gpu_capacity: int | None = None  # GPUs for the pods this operator manages; None: no limit
    capacity_configmap: str | None = None  # "<namespace>/<name>": its data.gpus overrides gpu_capacity


def gpus_per_pod(spec: dict | None) -> int:
    """GPUs one pod of a service takes: its resources' gpu limit (times the multinode node
    count, as one stand-in pod stands for a whole replica), else 1 for a worker and 0 for the
    components that run on CPUs."""
    spec = spec or {}
    res = spec.get("resources") or {}
    raw = (res.get("limits") or {}).get("gpu") or (res.get("requests") or {}).get("gpu")
    nodes = int((spec.get("multinode") or {}).get("nodeCount") or 1)
    if raw is None:
        ctype = str(spec.get("componentType") or "").lower()
        return 0 if ctype in NO_GPU_TYPES else nodes
    return int(raw) * nodes


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired_replicas(spec: dict | None) -> int:
    """A service's replica count; unset means 1, as in Dynamo."""
    value = (spec or {}).get("replicas")
    return 1 if value is None else int(value)


def _pod_gpus(pod: client.V1Pod) -> int:
    raw = (pod.metadata.annotations or {}).get(ANNOTATION_GPUS)
    if raw is not None:
        return int(raw)
    return 0 if pod.metadata.labels.get(LABEL_COMPONENT_TYPE) in NO_GPU_TYPES else 1


def _is_ready(pod: client.V1Pod) -> bool:
    for c in (pod.status and pod.status.conditions) or []:
        if c.type == "Ready":
            return c.status == "True"
    return False


class StandinOperator:
    def __init__(self, api: client.ApiClient, config: OperatorConfig | None = None,
                 backend: PodBackend | None = None) -> None:
        self.config = config or OperatorConfig()
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.backend = backend or TimerBackend()
        self._stop = threading.Event()
        self._capacity: int | None = self.config.gpu_capacity
        self._gpus_used = 0  # GPUs of the bound pods, kept current during a pass

    # -- listing ---------------------------------------------------------------------------
    def _list_dgds(self) -> list[dict]:
        ns = self.config.namespace
        if ns:
            res = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, DGD_PLURAL)
        else:
            res = self.custom.list_cluster_custom_object(GROUP, VERSION, DGD_PLURAL)
        return res.get("items", [])

    def _list_pods(self) -> list[client.V1Pod]:
        sel = f"{LABEL_MANAGED}=true"
        ns = self.config.namespace
        if ns:
            return self.core.list_namespaced_pod(ns, label_selector=sel).items
        return self.core.list_pod_for_all_namespaces(label_selector=sel).items

    # -- one pass --------------------------------------------------------------------------
    def _read_capacity(self) -> int | None:
        """The GPU capacity in effect: the ConfigMap's, when it exists and says, else the flag's."""
        if not self.config.capacity_configmap:
            return self.config.gpu_capacity
        ns, _, name = self.config.capacity_configmap.partition("/")
        try:
            data = self.core.read_namespaced_config_map(name, ns).data or {}
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self.config.gpu_capacity
        raw = data.get(CAPACITY_KEY, "").strip()
        if not raw:
            return self.config.gpu_capacity
        try:
            return max(0, int(raw))
        except ValueError:
            log.warning("capacity ConfigMap: not an integer", extra={"value": raw})
            return self.config.gpu_capacity

    def _fits(self, gpus: int) -> bool:
        return self._capacity is None or self._gpus_used + gpus <= self._capacity

    def _schedule(self, pods: list[client.V1Pod]) -> None:
        """Bind waiting pods, oldest first, while the GPUs last; the rest stay Unschedulable."""
        self._gpus_used = sum(_pod_gpus(p) for p in pods if p.spec.node_name)
        waiting = sorted((p for p in pods if not p.spec.node_name and not p.metadata.deletion_timestamp),
                         key=lambda p: p.metadata.creation_timestamp)
        for pod in waiting:
            gpus = _pod_gpus(pod)
            if not self._fits(gpus):
                self._mark_unschedulable(pod)
                continue
            self._bind(pod)
            pod.spec.node_name = NODE_NAME  # bound from now on, also for the rest of this pass
            self._gpus_used += gpus

    def reconcile_once(self) -> None:
        self._capacity = self._read_capacity()
        dgds = self._list_dgds()
        pods = self._list_pods()
        self._schedule(pods)
        by_owner: dict[tuple[str, str], list[client.V1Pod]] = {}
        for pod in pods:
            key = (pod.metadata.namespace, pod.metadata.labels.get(LABEL_DGD, ""))
            by_owner.setdefault(key, []).append(pod)
        seen: set[tuple[str, str]] = set()
        for dgd in dgds:
            key = (dgd["metadata"]["namespace"], dgd["metadata"]["name"])
            seen.add(key)
            if dgd["metadata"].get("deletionTimestamp"):
                continue
            try:
                self._reconcile_dgd(dgd, by_owner.get(key, []))
            except ApiException as exc:
                # one DGD the API refuses (e.g. in a namespace being deleted: 403) must not stop the others
                if exc.status in (404, 409):
                    log.debug("retrying DGD next pass", extra={"dgd": key[1], "status": exc.status})
                else:
                    log.warning("DGD not reconciled, retrying next pass",
                                extra={"namespace": key[0], "dgd": key[1], "status": exc.status, "reason": exc.reason})
        # pods whose DGD is gone: drain and remove
        for key, orphans in by_owner.items():
            if key not in seen:
                for pod in orphans:
                    self._terminate(pod, self._info(pod, 0.0))

    def _info(self, pod: client.V1Pod, delay: float) -> PodInfo:
        labels = pod.metadata.labels
        args = (pod.metadata.annotations or {}).get(ANNOTATION_POD_ARGS, "")
        return PodInfo(pod.metadata.namespace, pod.metadata.name, labels.get(LABEL_DGD, ""),
                       labels.get(LABEL_COMPONENT, ""), labels.get(LABEL_COMPONENT_TYPE, ""), delay,
                       labels.get(LABEL_SUB_COMPONENT_TYPE, ""), tuple(shlex.split(args)))

    def _reconcile_dgd(self, dgd: dict, pods: list[client.V1Pod]) -> None:
        meta = dgd["metadata"]
        name = meta["name"]
        services: dict[str, dict] = (dgd.get("spec") or {}).get("services") or {}
        delay = float((meta.get("annotations") or {}).get(ANNOTATION_STARTUP, self.config.startup_delay_s))
        svc_status: dict[str, dict] = {}
        for svc, spec in services.items():
            spec = spec or {}
            want = desired_replicas(spec)
            mine = [p for p in pods if p.metadata.labels.get(LABEL_COMPONENT) == svc]
            live = [p for p in mine if not p.metadata.deletion_timestamp]
            for pod in mine:
                if pod.metadata.deletion_timestamp:
                    self._terminate(pod, self._info(pod, delay))
            if len(live) < want:
                for _ in range(want - len(live)):
                    self._create_pod(dgd, svc, spec)
            elif len(live) > want:
                # remove pods that do no work yet first, then the newest
                doomed = sorted(live, key=lambda p: (_is_ready(p), -p.metadata.creation_timestamp.timestamp()))
                for pod in doomed[: len(live) - want]:
                    self._delete(pod)
                gone = {p.metadata.name for p in doomed[: len(live) - want]}
                live = [p for p in live if p.metadata.name not in gone]
            ready = 0
            for pod in live:
                if not pod.spec.node_name:  # not scheduled: nothing runs for it
                    continue
                info = self._info(pod, delay)
                self.backend.start(info)
                if _is_ready(pod) and self.backend.healthy(info):
                    ready += 1
                elif _is_ready(pod):
                    self._mark_not_ready(pod)
                elif self.backend.ready(info):
                    self._mark_ready(pod)
                    ready += 1
            current = len(live)
            svc_status[svc] = {
                "componentKind": "Deployment",
                "componentName": f"{name}-{svc.lower()}",
                "replicas": current,
                "updatedReplicas": current,
                "readyReplicas": min(ready, want),
                "availableReplicas": min(ready, want),
            }
        for pod in pods:
            if pod.metadata.labels.get(LABEL_COMPONENT) not in services and not pod.metadata.deletion_timestamp:
                self._delete(pod)
        self._write_status(dgd, services, svc_status)

    # -- actions ---------------------------------------------------------------------------
    def _create_pod(self, dgd: dict, svc: str, spec: dict) -> None:
        meta = dgd["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ctype = str(spec.get("componentType") or spec.get("subComponentType") or "worker")
        pod_name = f"{name}-{svc.lower()}-{secrets.token_hex(3)}"[:63].rstrip("-")
        labels = {LABEL_DGD: name, LABEL_COMPONENT: svc, LABEL_COMPONENT_TYPE: ctype,
                  LABEL_NAMESPACE: f"{ns}-{name}", LABEL_MANAGED: "true"}
        if spec.get("subComponentType"):
            labels[LABEL_SUB_COMPONENT_TYPE] = str(spec["subComponentType"])
        args = (meta.get("annotations") or {}).get(ANNOTATION_ARGS_PREFIX + svc.lower(), "")
        gpus = gpus_per_pod(spec)
        annotations = {ANNOTATION_POD_ARGS: args} if args else {}
        if self.config.gpu_capacity is not None or self.config.capacity_configmap:
            annotations[ANNOTATION_GPUS] = str(gpus)
        fits = self._fits(gpus)
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod_name, "namespace": ns, "labels": labels, "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "DynamoGraphDeployment",
                    "name": name, "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "spec": {
                "terminationGracePeriodSeconds": POD_GRACE_S,
                "containers": [{"name": "main", "image": f"dynamo-standin/{ctype}"}],
            },
        }
        if fits:
            body["spec"]["nodeName"] = NODE_NAME
            self._gpus_used += gpus
        pod = self.core.create_namespaced_pod(ns, body)
        log.info("pod created", extra={"pod": pod_name, "dgd": name, "service": svc, "scheduled": fits})
        if not fits:
            self._mark_unschedulable(pod)

    def _bind(self, pod: client.V1Pod) -> None:
        """Place the pod on the node as the scheduler does (the API server sets PodScheduled)."""
        binding = client.V1Binding(metadata=client.V1ObjectMeta(name=pod.metadata.name),
                                   target=client.V1ObjectReference(api_version="v1", kind="Node", name=NODE_NAME))
        # the generated client cannot read the Status this call answers with: do not parse it
        self.core.create_namespaced_pod_binding(pod.metadata.name, pod.metadata.namespace, binding,
                                                _preload_content=False)
        log.info("pod scheduled", extra={"pod": pod.metadata.name, "gpus": _pod_gpus(pod)})

    def _mark_unschedulable(self, pod: client.V1Pod) -> None:
        """Pending with PodScheduled=False as kube-scheduler reports a pod no node has room for
        (written once: the transition time says since when)."""
        for c in (pod.status and pod.status.conditions) or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": UNSCHEDULABLE_MESSAGE, "lastTransitionTime": _now()}
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace,
                                              {"status": {"phase": "Pending", "conditions": [cond]}})
        log.info("pod unschedulable: no GPU left", extra={"pod": pod.metadata.name, "capacity": self._capacity,
                                                          "gpus_used": self._gpus_used})

    def _mark_ready(self, pod: client.V1Pod) -> None:
        now = _now()
        conds = [{"type": t, "status": "True", "lastTransitionTime": now}
                 for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        body = {"status": {"phase": "Running", "conditions": conds, "startTime": now,
                           "podIP": "127.0.0.1", "hostIP": "127.0.0.1"}}
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
        log.info("pod ready", extra={"pod": pod.metadata.name})

    def _mark_not_ready(self, pod: client.V1Pod) -> None:
        now = _now()
        conds = [{"type": t, "status": "False", "lastTransitionTime": now, "reason": "ProcessExited"}
                 for t in ("ContainersReady", "Ready")]
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace,
                                              {"status": {"conditions": conds}})
        log.warning("pod not ready: what backed it has exited", extra={"pod": pod.metadata.name})

    def _delete(self, pod: client.V1Pod) -> None:
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                            grace_period_seconds=POD_GRACE_S)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _terminate(self, pod: client.V1Pod, info: PodInfo) -> None:
        """A pod marked for deletion: drain what backs it, then remove the object for good."""
        if not pod.metadata.deletion_timestamp:
            self._delete(pod)
            return
        if not self.backend.stop(info):
            return
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
            log.info("pod removed", extra={"pod": pod.metadata.name})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _write_status(self, dgd: dict, services: dict, svc_status: dict[str, dict]) -> None:
        meta = dgd["metadata"]
        all_ready = all(
            s["readyReplicas"] == desired_replicas(services[k]) == s["replicas"]
            for k, s in svc_status.items()
        )
        old = dgd.get("status") or {}
        state = "successful" if all_ready else "pending"
        old_ready = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), None)
        ready_status = "True" if all_ready else "False"
        transition = old_ready["lastTransitionTime"] if old_ready and old_ready.get("status") == ready_status else _now()
        status = {
            "state": state,
            "observedGeneration": meta.get("generation"),
            "services": svc_status,
            "conditions": [{
                "type": "Ready", "status": ready_status,
                "reason": "AllServicesReady" if all_ready else "ServicesNotReady",
                "message": "all services have their replicas ready" if all_ready
                else "some services do not have all replicas ready",
                "lastTransitionTime": transition,
            }],
        }
        if {k: old.get(k) for k in status} == status:
            return
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], DGD_PLURAL, meta["name"], {"status": status})

    # -- loop ------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("stand-in operator running", extra={"namespace": self.config.namespace or "*"})
        try:
            while not self._stop.is_set():
                try:
                    self.reconcile_once()
                except ApiException as exc:
                    log.warning("reconcile pass failed", extra={"status": exc.status, "reason": exc.reason})
                except OSError as exc:
                    log.warning("API server unreachable", extra={"error": str(exc)})
                self._stop.wait(self.config.period_s)
        finally:
            self.backend.close()

    def stop(self) -> None:
        self._stop.set()
