"""Write replicas through each adapter's /scale subresource."""

from __future__ import annotations

from adapter.models import adapter_name
from adapter.scale_client import ScaleClient


class ScaleActuator:
    def __init__(self, client: ScaleClient, dgd_name: str) -> None:
        self.client, self.dgd = client, dgd_name

    def scale(self, service: str, replicas: int) -> None:
        self.client.set(adapter_name(self.dgd, service), replicas)
