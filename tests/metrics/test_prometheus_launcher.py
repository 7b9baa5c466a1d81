"""The Prometheus launcher used by every metrics test and the demo."""

from __future__ import annotations

import json

from helpers import wait_for


def test_scrapes_file_sd_targets_and_restarts_on_same_port(prometheus, exporters):
    exp = exporters()
    exp.set([{"name": "dynamo_frontend_queued_requests", "labels": {"model": "m"}, "value": 7}])
    prometheus.set_targets("frontend", [(exp.address, {"dgd": "llm", "service": "Frontend"})])
    prometheus.wait_for_targets("frontend", 1)
    res = wait_for(lambda: prometheus.query('dynamo_frontend_queued_requests{dgd="llm"}'), what="series")
    assert res[0]["metric"]["job"] == "frontend" and res[0]["metric"]["service"] == "Frontend"
    assert float(res[0]["value"][1]) == 7.0
    files = list(prometheus.sd_dir.glob("*.json"))
    assert [f.name for f in files] == ["frontend.json"]
    assert json.loads(files[0].read_text())[0]["targets"] == [exp.address]

    port, pid = prometheus.port, prometheus.pid
    prometheus.restart()
    assert prometheus.port == port and prometheus.pid != pid
    # the data survived the restart
    assert prometheus.query("count_over_time(dynamo_frontend_queued_requests[5m])")


def test_stop_kills_process(prometheus):
    pid = prometheus.pid
    prometheus.stop()
    import os
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive and prometheus.pid is None
