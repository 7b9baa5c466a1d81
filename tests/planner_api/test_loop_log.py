"""A planning tick's log lines name the DGD they are about, which a fleet planner's logs need
(one process, many DGDs)."""

from __future__ import annotations

import logging

from test_planner_loop import World, _loop


def test_tick_and_held_pool_log_lines_name_the_dgd(caplog):
    world = World({"prefill": 1, "decode": 2}, missing={"decode": "no KV usage series"})
    loop = _loop(world)
    loop.dgd = "team-a/llama"  # as DeploymentPlanner sets it
    with caplog.at_level(logging.INFO, logger="scaler.service.loop"):
        loop.tick()
    lines = {r.getMessage(): r for r in caplog.records}
    assert {"planner tick", "pool held: missing data"} <= set(lines), list(lines)
    for message in ("planner tick", "pool held: missing data"):
        assert lines[message].dgd == "team-a/llama", message
