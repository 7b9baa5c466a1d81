"""A worker that never registers is started again, as a kubelet's start-up probe would: a mocker
whose system port is taken by the time it binds stays up without a health endpoint, and its pod
would otherwise never be Ready. Real Dynamo processes; the taken port is the fault."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from devcluster.dynamo import processes
from devcluster.standin.backends import PodInfo
from devcluster.standin.dynamo_backend import DynamoBackend

pytestmark = pytest.mark.dynamo


def test_a_worker_that_does_not_register_in_time_is_restarted_on_a_new_port(tmp_path, monkeypatch, caplog):
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", processes.free_port(*processes.PORT_RANGE)))
    taken.listen()
    # the first launch gets a port someone else binds first (two processes picked it at once)
    clash = iter([taken.getsockname()[1]])
    real = processes.free_port
    monkeypatch.setattr(processes, "free_port", lambda *a: next(clash, None) or real(*a))
    pod = PodInfo("ns", "w-decode-1", "w", "decode", "worker", 0.0, "decode")
    backend = DynamoBackend(tmp_path, startup_timeout_s=8.0)
    caplog.set_level(logging.INFO, logger="devcluster.standin.dynamo_backend")
    try:
        start = time.monotonic()
        assert not backend.ready(pod)
        first = backend.processes()[0][1]
        assert first.port == taken.getsockname()[1]
        while not backend.ready(pod):
            assert time.monotonic() - start < 60, caplog.text
            time.sleep(0.2)
        second = backend.processes()[0][1]
        assert second.pid != first.pid and second.port != first.port
        assert not first.alive
        assert time.monotonic() - start >= 8.0
        assert "did not register" in caplog.text
    finally:
        backend.close()
        taken.close()
