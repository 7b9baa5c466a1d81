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


# Prefix of a `python -c` program whose first argument lists top-level modules (comma-separated)
# that must fail to import, as on an install without them (extras, test tools).
IMPORT_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""
