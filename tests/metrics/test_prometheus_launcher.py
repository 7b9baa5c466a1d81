"""The Prometheus launcher used by every metrics test and the demo."""

from __future__ import annotations

import json

from helpers import wait_for

from devcluster.prometheus import Prometheus


POD = {"namespace": "ns", "pod": "llm-frontend-0", "component_type": "frontend", "dgd": "llm", "service": "Frontend",
       "dynamo_namespace": "ns-llm"}


def test_scrapes_file_sd_targets_and_restarts_on_same_port(prometheus, exporters):
    """By default a pod's target keeps only what a stock Dynamo PodMonitor gives it."""
    exp = exporters()
    exp.set([{"name": "dynamo_frontend_queued_requests", "labels": {"model": "m"}, "value": 7}])
    prometheus.set_targets("frontend", [(exp.address, POD)])
    prometheus.wait_for_targets("frontend", 1)
    res = wait_for(lambda: prometheus.query('dynamo_frontend_queued_requests{namespace="ns"}'), what="series")
    assert res[0]["metric"] == {"__name__": "dynamo_frontend_queued_requests", "model": "m", "namespace": "ns",
                                "pod": "llm-frontend-0", "container": "main", "endpoint": "http",
                                "job": "dynamo-system/dynamo-frontend", "instance": exp.address}
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


def test_dgd_labels_mode_keeps_what_relabelling_podmonitors_add(exporters, tmp_path):
    exp = exporters()
    exp.set([{"name": "vllm:num_requests_waiting", "labels": {"model_name": "m"}, "value": 2}])
    with Prometheus(tmp_path / "prom", labels="dgd-labels") as prom:
        prom.set_targets("decode", [(exp.address, {**POD, "pod": "llm-decode-0", "component_type": "decode",
                                                   "service": "decode"})])
        prom.wait_for_targets("decode", 1)
        res = wait_for(lambda: prom.query('vllm:num_requests_waiting{dgd="llm"}'), what="series")
    assert {k: v for k, v in res[0]["metric"].items() if k not in ("__name__", "instance", "model_name")} == {
        "namespace": "ns", "pod": "llm-decode-0", "container": "main", "endpoint": "system",
        "job": "dynamo-system/dynamo-worker", "dgd": "llm", "service": "decode"}
