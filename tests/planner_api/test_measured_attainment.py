"""Measured attainment, live: the frontend's TTFT / ITL / ISL bucket increases over the planning
window, as the planner queries them (both label presets, one DGD or a fleet round's namespace),
read into the window's SLA counts; the ISL buckets reach a policy with a tail model before it
decides; the counts are exported and shown in the status. The live wiring against a real
Dynamo frontend is tests/planner_api/test_measured_attainment_live.py."""

from __future__ import annotations

import math

from prometheus_client import generate_latest

from external_metrics.prom import Sample
from external_metrics.signals import SignalMapping
from scaler.control.api import ControlService
from scaler.control.audit import Audit
from scaler.control.state import ControlState, SLATargets
from scaler.planner.config import PlannerConfig
from scaler.planner.predictive import PredictivePlanner
from scaler.policy import Observation, PoolObservation, SLOCounts, TrafficWindow
from scaler.profile import bundled_profile
from scaler.service.histograms import (
    ISL,
    ITL,
    TTFT,
    WindowHistograms,
    by_dgd,
    measured_attainment,
    with_histograms,
)
from scaler.service.loop import PlannerLoop, PoolServices, Snapshot
from scaler.service.metrics import PlannerMetrics

INF = math.inf
DGD = {"namespace": "ns", "dgd": "llm"}


def test_stock_preset_sums_the_dgd_frontend_buckets_by_edge_through_the_pod_identity():
    m = with_histograms(SignalMapping(window="30s"))
    q = m.render(TTFT, DGD)
    assert q.startswith("sum by (namespace, dynamo_namespace, dynamo_component, model, le) "
                        '(increase(dynamo_frontend_time_to_first_token_seconds_bucket{pod!="",namespace="ns"}[30s])'
                        " * on (namespace, pod) group_left (dynamo_namespace, dynamo_component) (")
    # the DGD is its Dynamo namespace, in either spelling; the frontend found by its router series
    assert 'dynamo_namespace=~"ns\\\\-llm|ns_llm"' in q
    assert 'label_replace(dynamo_component_router_requests_total{pod!="",namespace="ns",dynamo_namespace=~' in q
    assert "dynamo_frontend_inter_token_latency_seconds_bucket{" in m.render(ITL, DGD)
    assert "dynamo_frontend_input_sequence_tokens_bucket{" in m.render(ISL, DGD)
    # a fleet round: one query for every DGD of the namespace
    fleet = m.render(TTFT, {"namespace": "ns"})
    assert "dynamo_namespace=~" not in fleet and 'namespace="ns"' in fleet


def test_dgd_labels_preset_filters_the_relabelled_series_directly():
    m = with_histograms(SignalMapping(preset="dgd-labels", window="30s"))
    assert m.render(TTFT, DGD) == (
        "sum by (namespace, dgd, service, dynamo_namespace, model, le) "
        '(increase(dynamo_frontend_time_to_first_token_seconds_bucket{dgd!="",namespace="ns",dgd="llm"}[30s]))')
    assert m.render(ISL, {"namespace": "ns"}) == (
        "sum by (namespace, dgd, service, dynamo_namespace, model, le) "
        '(increase(dynamo_frontend_input_sequence_tokens_bucket{dgd!="",namespace="ns"}[30s]))')


def test_a_signals_file_may_replace_a_histogram_query():
    mine = SignalMapping.from_overrides({"signals": {TTFT: {"query": "sum by ({by}, le) (my_ttft_bucket{{sel}})"}}})
    assert with_histograms(mine).render(TTFT).startswith("sum by (namespace, dynamo_namespace, dynamo_component, "
                                                         "model, le) (my_ttft_bucket{")


def _samples(dgd: str, edges: dict[str, float], service: str = "frontend", model: str = "m") -> list[Sample]:
    labels = {"namespace": "ns", "dynamo_namespace": f"ns_{dgd}", "dynamo_component": service, "model": model}
    return [Sample({**labels, "le": le}, v, 0.0) for le, v in edges.items()]


def test_buckets_are_summed_per_dgd_over_its_series_by_edge():
    m = SignalMapping()
    samples = (_samples("llm", {"0.1": 3, "0.5": 8, "+Inf": 10}) + _samples("llm", {"0.1": 1, "0.5": 1, "+Inf": 2},
                                                                           model="other")
               + _samples("chat-bot", {"0.1": 5, "+Inf": 5}) + [Sample({"namespace": "ns"}, 7.0, 0.0)])
    got = by_dgd(m, samples)
    assert got[("ns", "llm")] == {0.1: 4, 0.5: 9, INF: 12}
    assert got[("ns", "chat-bot")] == {0.1: 5, INF: 5}  # `_` in the Dynamo namespace was a `-`
    assert len(got) == 2  # a series without `le` is no bucket


def test_window_histograms_give_the_sla_counts_against_the_targets():
    h = WindowHistograms(ttft={0.1: 50, 0.25: 80, 0.5: 90, 1.0: 97, INF: 100},
                         itl={0.01: 4000, 0.05: 9800, INF: 10000},
                         isl={1000: 40, 64000: 95, INF: 100})
    profile = bundled_profile()
    slo = h.slo(500.0, 50.0, unloaded_ttft_ms=profile.prefill.ttft_ms_at)
    assert slo == SLOCounts(measured=100, ttft_missed=10, itl_missed=2, unreachable=5)
    # between edges the straddling bucket is missed; below every edge all are
    assert h.slo(400.0, 50.0).ttft_missed == 20
    assert h.slo(1.0, 1.0) == SLOCounts(100, 100, 100, 0)
    assert measured_attainment(slo) == {"measured": 100, "ttft_missed": 10, "itl_missed": 2, "unreachable": 5,
                                        "attainment": {"ttft": 0.9, "itl": 0.98}}


def test_no_ttft_histogram_is_no_measurement_and_an_idle_window_measures_nothing():
    assert WindowHistograms(ttft=None, itl={0.01: 5, INF: 5}).slo(500.0, 50.0) is None
    assert WindowHistograms(ttft={0.1: 5}).slo(500.0, 50.0) is None  # no total bucket
    idle = WindowHistograms(ttft={0.1: 0, INF: 0}, isl={1000: 0, INF: 0})
    assert idle.slo(500.0, 50.0) == SLOCounts(0, 0, 0, 0)
    assert idle.prompts() is None and measured_attainment(None) is None
    assert measured_attainment(SLOCounts())["attainment"] == {}


class World:
    def __init__(self, buckets, slo=None) -> None:
        self.buckets, self.slo = buckets, slo

    def observe(self) -> Snapshot:
        traffic = TrafficWindow(duration_s=10.0, num_requests=50, avg_isl=100.0, avg_osl=50.0, slo=self.slo)
        obs = Observation(1000.0, traffic, PoolObservation(active=1), PoolObservation(active=1))
        return Snapshot(obs, True, {"prefill": 1, "decode": 1}, prompt_buckets=self.buckets)

    def scale(self, service: str, replicas: int) -> None:
        pass


def _loop(world: World, policy) -> PlannerLoop:
    control = ControlService(ControlState(sla=SLATargets(ttft_ms=500, itl_ms=50)), None, Audit(), status=dict)
    return PlannerLoop(policy, world, world, control, PoolServices("prefill", "decode"))


def test_the_loop_hands_the_prompt_histogram_to_a_tail_model_before_it_decides():
    # the window's mean says 100 tokens; the histogram says every prompt was up to 8000
    fed = PredictivePlanner(bundled_profile(), PlannerConfig(need_model="tail"))
    _loop(World({1000.0: 0, 8000.0: 50, INF: 50}), fed).tick()
    assert list(fed.prompts.mix().isl) == [8000.0]
    unfed = PredictivePlanner(bundled_profile(), PlannerConfig(need_model="tail"))
    _loop(World(None), unfed).tick()
    assert list(unfed.prompts.mix().isl) == [100.0]


def test_a_policy_without_a_prompt_model_is_not_fed_and_the_counts_are_exported():
    class Fixed:
        name = "fixed"

        def decide(self, obs):
            from scaler.policy import Decision
            return Decision(1, 1, reason="fixed")

    metrics = PlannerMetrics()
    res = _loop(World({1000.0: 5, INF: 5}, SLOCounts(40, 4, 0, 1)), Fixed()).tick()
    assert res.slo == SLOCounts(40, 4, 0, 1)
    metrics.record(res)
    text = generate_latest(metrics.registry).decode()
    assert 'dynamo_planner_window_requests{kind="measured"} 40.0' in text
    assert 'dynamo_planner_attainment{kind="ttft"} 0.9' in text
    assert 'dynamo_planner_attainment{kind="itl"} 1.0' in text
    # a window without a TTFT histogram: the series go, they do not read zero
    metrics.record(_loop(World(None), Fixed()).tick())
    text = generate_latest(metrics.registry).decode()
    assert "dynamo_planner_attainment{" not in text and "dynamo_planner_window_requests{" not in text
