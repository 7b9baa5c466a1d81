"""Ports handed to processes that start at the same moment: one process never hands out a port
twice while the first taker may still be starting (it binds only once it is up)."""

from __future__ import annotations

import socket

import pytest

from devcluster.procs import free_port


def test_a_port_in_a_range_is_not_handed_out_twice_while_reserved():
    low = 24100
    got = [free_port(low, low + 8) for _ in range(8)]
    assert len(set(got)) == 8, sorted(got)


def test_a_range_with_every_port_reserved_or_taken_is_an_error_naming_it():
    low = 24200
    held = socket.socket()
    held.bind(("127.0.0.1", low))
    try:
        assert free_port(low, low + 2) == low + 1
        with pytest.raises(RuntimeError, match=r"no free port in \[24200, 24202\)"):
            free_port(low, low + 2)
    finally:
        held.close()

