"""What backs a stand-in pod: nothing but a start-up timer, or a real process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    dgd: str
    service: str
    component_type: str
    startup_delay_s: float
    sub_component_type: str = ""
    args: tuple[str, ...] = ()  # extra command-line arguments for the process behind the pod

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def role(self) -> str:
        """frontend, prefill, decode, or agg (a worker that does both)."""
        if self.component_type == "frontend":
            return "frontend"
        if self.sub_component_type in ("prefill", "decode"):
            return self.sub_component_type
        if self.component_type in ("prefill", "decode"):  # v1beta1 names the role in `type` itself
            return self.component_type
        return "agg"


class PodBackend(Protocol):
    def start(self, pod: PodInfo) -> None:
        """Begin starting whatever backs the pod (idempotent)."""

    def ready(self, pod: PodInfo) -> bool:
        """True once the pod may be reported Ready."""

    def stop(self, pod: PodInfo) -> bool:
        """Begin draining (idempotent); True once nothing backs the pod any more."""

    def healthy(self, pod: PodInfo) -> bool:
        """False when what backed a Ready pod has died (the pod turns NotReady, as a kubelet
        would report a crashed container, and starts again through `ready`)."""

    def close(self) -> None:
        """Stop everything at once."""


class TimerBackend:
    """Pods become Ready `startup_delay_s` after they were first seen, and stop at once."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def start(self, pod: PodInfo) -> None:
        self._started.setdefault(pod.key, time.monotonic())

    def ready(self, pod: PodInfo) -> bool:
        self.start(pod)
        return time.monotonic() - self._started[pod.key] >= pod.startup_delay_s

    def stop(self, pod: PodInfo) -> bool:
        self._started.pop(pod.key, None)
        return True

    def healthy(self, pod: PodInfo) -> bool:
        return True

    def close(self) -> None:
        self._started.clear()
