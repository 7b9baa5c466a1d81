"""A controller replica stopped cleanly (SIGTERM) while it leads releases its Lease: the standby
leads at its next retry instead of waiting out the lease duration, and then does the writing."""

from __future__ import annotations

import signal

import pytest
from helpers import wait_for
from test_adapter_ha import _decode, _ready, _replica, leader_scales_decode_to_3

pytestmark = pytest.mark.cluster

# a lease far longer than a retry: a standby that leads within a few retries was handed the
# lease, since one left to expire takes the whole lease duration
LEASE_S, RENEW_DEADLINE_S, RETRY_S = 60.0, 40.0, 1.0
# the leader's shutdown (kopf stops, at most 5 s, then the release) and the standby's next try,
# with slack for two loaded cores
HANDOVER_S = 5 + RETRY_S + 15
PERIODS = ("--leader-election-lease-duration", str(LEASE_S), "--leader-election-renew-deadline",
           str(RENEW_DEADLINE_S), "--leader-election-retry-period", str(RETRY_S))


def _holder(kubectl, namespace: str) -> str | None:
    return kubectl.json("-n", namespace, "get", "lease", "adapter-leader")["spec"].get("holderIdentity")


def test_a_leader_stopped_cleanly_hands_the_lease_to_the_standby(cluster, kubectl, namespace, adapter_kubeconfig,
                                                                 tmp_path):
    assert HANDOVER_S < LEASE_S / 2
    with open(tmp_path / "replicas.log", "ab") as log:
        a, _ = _replica(adapter_kubeconfig, namespace, "replica-a", log, *PERIODS)
        wait_for(lambda: kubectl.run("-n", namespace, "get", "lease", "adapter-leader", check=False).returncode == 0
                 and _holder(kubectl, namespace) == "replica-a", what="lease taken")
        b, b_health = _replica(adapter_kubeconfig, namespace, "replica-b", log, *PERIODS)
        try:
            wait_for(lambda: _ready(b_health), what="standby watching")
            leader_scales_decode_to_3(kubectl, namespace)
            a.send_signal(signal.SIGTERM)
            wait_for(lambda: _holder(kubectl, namespace) == "replica-b", timeout=HANDOVER_S, interval=0.5,
                     what="the standby leads at its next retry")
            assert a.wait(30) == 0
            assert "lease released" in (tmp_path / "replicas.log").read_text()
            kubectl("-n", namespace, "scale", "dgdsa", "llama-decode", "--replicas=4")
            wait_for(lambda: _decode(kubectl, namespace) == 4, what="the new leader applies a scale")
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.terminate()
                    p.wait(15)
