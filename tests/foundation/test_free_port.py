"""Ports handed to processes that start at the same moment: one process never hands out a port
twice while the first taker may still be starting (it binds only once it is up)."""

from __future__ import annotations

import socket

import pytest

from devcluster.procs import free_port

# below the range Dynamo's processes are given (20000-32000) and the kernel's ephemeral ports, so
# nothing else this suite starts is on them
LOW = 19100


def test_a_port_in_a_range_is_not_handed_out_twice_while_reserved():
    low = LOW
    got = [free_port(low, low + 8) for _ in range(8)]
    assert len(set(got)) == 8, sorted(got)


def test_a_range_with_every_port_reserved_or_taken_is_an_error_naming_it():
    low = LOW + 100
    held = socket.socket()
    held.bind(("127.0.0.1", low))
    try:
        assert free_port(low, low + 2) == low + 1
        with pytest.raises(RuntimeError, match=rf"no free port in \[{low}, {low + 2}\)"):
            free_port(low, low + 2)
    finally:
        held.close()
