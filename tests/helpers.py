"""Small helpers for tests (import as `from helpers import wait_for`)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from devcluster import scenario
from devcluster.procs import poll_until


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, what: str = "condition",
             explain: Callable[[], str] | None = None):
    """Poll until `predicate()` is truthy; return its value or fail naming `what` (and, with
    `explain`, what it says about the state at that moment)."""
    last = [None]

    def probe():
        last[0] = predicate()
        return last[0]

    try:
        return poll_until(probe, timeout, what, interval)
    except TimeoutError:
        detail = ""
        if explain is not None:
            try:
                detail = "\n" + explain()
            except Exception as exc:  # noqa: BLE001  the explanation must not hide the timeout
                detail = f"\n(no explanation: {exc!r})"
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last[0]!r}){detail}")


def wait_dgd_ready(kubectl, namespace: str, name: str, stack=None, timeout: float = 120.0) -> None:
    """Wait for a DGD's Ready condition; on a timeout say what its status and, with a LiveStack,
    the stand-in operator's log said."""
    def explain() -> str:
        status = kubectl.json("-n", namespace, "get", "dgd", name).get("status", {})
        text = f"DGD {name} status: {json.dumps(status, sort_keys=True)}"
        if stack is not None:
            text += "\nstand-in log (tail):\n" + stack.log_tail("standin", 4000)
        return text

    wait_for(lambda: scenario.dgd_ready(kubectl, namespace, name), timeout=timeout, what=f"DGD {name} Ready",
             explain=explain)


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


# what two what-if answers for the same window and settings (or a replay of the rebuilt trace) agree on
WHAT_IF_SAME = ("requests", "sla_attainment", "feasible_attainment", "gpu_hours", "max_gpus", "scale_events",
                "ttft_p50_ms", "ttft_p99_ms", "itl_p99_ms")


def assert_same_what_if(answer: dict, other: dict) -> None:
    """Two what-if answers (e.g. the planner's and the command line's) give the same window, the same
    settings and the same numbers on both sides."""
    assert other["window"] == answer["window"]
    for side in ("current", "proposed"):
        assert other[side]["settings"] == answer[side]["settings"], side
        for key in WHAT_IF_SAME:
            assert answer[side][key] == other[side][key], (side, key)
