"""Small helpers for tests (import as `from helpers import wait_for`)."""

from __future__ import annotations

import pytest

from devcluster.procs import poll_until


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """Poll until `predicate()` is truthy; return its value or fail naming `what`."""
    last = [None]

    def probe():
        last[0] = predicate()
        return last[0]

    try:
        return poll_until(probe, timeout, what, interval)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last[0]!r})")
