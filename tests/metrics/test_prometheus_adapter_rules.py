"""The prometheus-adapter rules config the side-by-side benchmark runs
(devcluster/tools/prometheus-adapter/rules.yaml) is current with our signal mapping, names every
compared signal, and, expanded the way the adapter expands it for a read, gives the same answer
as our PromQL on a real Prometheus. Needs no Go build: it checks the config, not the adapter."""

from __future__ import annotations

import time

import yaml

from devcluster import prometheus_adapter as pa
from external_metrics.signals import SignalMapping
from helpers import wait_for


def test_committed_rules_are_generated_from_the_mapping_and_name_every_signal():
    text = pa.RULES_FILE.read_text()
    assert text == pa.render_rules(), "regenerate: python -m devcluster.prometheus_adapter rules > " \
                                      "devcluster/tools/prometheus-adapter/rules.yaml"
    rules = yaml.safe_load(text)["externalRules"]
    assert [r["name"]["as"] for r in rules] == list(pa.SIGNALS)
    assert {"dynamo_queue_depth", "dynamo_kv_cache_usage", "dynamo_kv_cache_usage_sum", "dynamo_request_rate",
            "dynamo_ttft_seconds_p95"} <= set(pa.SIGNALS)
    for r in rules:
        # the adapter's only template action here; anything else would be left unexpanded below
        assert r["metricsQuery"].replace("<<.LabelMatchers>>", "").count("<<") == 0, r
        assert r["resources"]["overrides"] == {"namespace": {"resource": "namespace"}}


def _expand(rule: dict, namespace: str, selector: dict[str, str]) -> str:
    """What prometheus-adapter 0.12 sends for a read: the HPA's selector, then the namespace
    under the label its `resources` maps to the namespace resource (none: not namespaced)."""
    matchers = [f'{k}="{v}"' for k, v in selector.items()]
    overrides = rule.get("resources", {}).get("overrides", {})
    matchers += [f'{label}="{namespace}"' for label, res in overrides.items() if res == {"resource": "namespace"}]
    return rule["metricsQuery"].replace("<<.LabelMatchers>>", ",".join(matchers))


def _values(prom, promql: str, at: float) -> dict:
    # one evaluation time for both sides: rates extrapolate to it
    result = prom.query_range(promql, at, at, 1)
    return {tuple(sorted(s["metric"].items())): round(float(s["values"][0][1]), 9) for s in result}


def test_adapter_queries_answer_like_ours_on_real_series(prometheus, exporters):
    exp = exporters()
    series = []
    for ns, dgd, queue, kv in (("ns-a", "llm", 3, 0.25), ("ns-a", "other", 7, 0.5), ("ns-b", "llm", 11, 0.75)):
        ident = {"namespace": ns, "dgd": dgd, "dynamo_namespace": f"{ns}-{dgd}"}
        for pod in range(2):
            worker = {**ident, "service": "decode", "pod": f"{dgd}-decode-{pod}", "model_name": "m"}
            series += [{"name": "vllm:num_requests_waiting", "labels": worker, "value": queue + pod},
                       {"name": "vllm:kv_cache_usage_perc", "labels": worker, "value": kv * (pod + 1) / 2}]
        fe = {**ident, "service": "Frontend", "model": "m"}
        series.append({"name": "dynamo_frontend_requests", "type": "counter", "labels": fe, "value": 0})
        series.append({"name": "dynamo_frontend_time_to_first_token_seconds", "type": "histogram", "labels": fe,
                       "buckets": [0.1, 0.5, 1.0], "observations": []})
    exp.set(series)
    prometheus.set_targets("bench", [(exp.address, {})])
    prometheus.wait_for_targets("bench", 1)
    wait_for(lambda: prometheus.query('vllm:num_requests_waiting{dgd!=""}'), what="first scrape")
    # counters move after the first scrape, so rates over the window have two points
    for s in series:
        if s.get("type") == "counter":
            s["value"] = 30
        elif s.get("type") == "histogram":
            s["observations"] = [0.05, 0.3, 0.3, 0.7]
    exp.set(series)

    # the rules read `dgd`/`service` labels, as relabelled PodMonitors give them
    mapping = SignalMapping(preset="dgd-labels")
    rules = {r["name"]["as"]: r for r in yaml.safe_load(pa.RULES_FILE.read_text())["externalRules"]}
    for name in pa.SIGNALS:
        service = "Frontend" if name in ("dynamo_request_rate", "dynamo_ttft_seconds_p95") else "decode"
        for ns, sel in (("ns-a", {"dgd": "llm", "service": service}), ("ns-a", {}), ("ns-b", {"dgd": "llm"})):
            ours = mapping.render(name, {"namespace": ns, **sel})
            theirs = _expand(rules[name], ns, sel)
            # wait until ours answers (rates need the second scrape), then both must agree
            at = [0.0]

            def answered() -> dict | None:
                at[0] = time.time()
                return _values(prometheus, ours, at[0]) or None

            expected = wait_for(answered, timeout=30, what=f"{name} {ns} {sel} from our PromQL")
            assert _values(prometheus, theirs, at[0]) == expected, (name, ns, sel, theirs)
            assert expected and all(dict(k)["namespace"] == ns for k in expected)
