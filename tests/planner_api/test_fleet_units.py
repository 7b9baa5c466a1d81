"""Fleet mode's pure parts: the config, how a DGD's pools are found, and the round's budget step."""

from __future__ import annotations

import pytest

from adapter.models import parse_dgd
from scaler.control.policy import PolicySpec, Roles
from scaler.planner.fleet import Holding
from scaler.service.capacity import PodState
from scaler.service.config import ConfigError, load
from scaler.service.fleet import (
    Member,
    Pools,
    Unresolved,
    admit_round,
    budget_round,
    holding,
    resolve_pools,
)


def dgd(services: dict) -> object:
    return parse_dgd({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                      "metadata": {"name": "llama", "namespace": "team-a"}, "spec": {"services": services}})


DISAGG = {"Frontend": {"componentType": "frontend"},
          "pf": {"componentType": "worker", "subComponentType": "prefill", "resources": {"limits": {"gpu": "2"}}},
          "dec": {"componentType": "worker", "subComponentType": "decode"}}


def test_pools_by_sub_component_type_with_the_frontend():
    assert resolve_pools(dgd(DISAGG), None, "team-a/llama") == Pools("pf", "dec", "Frontend")


def test_pools_by_name_when_no_sub_component_type():
    got = resolve_pools(dgd({"prefill": {"componentType": "worker"}, "decode": {"componentType": "worker"}}),
                        None, "team-a/llama")
    assert got == Pools("prefill", "decode", None)


def test_roles_win_over_sub_component_type():
    services = {**DISAGG, "pf2": {"componentType": "worker", "subComponentType": "prefill"}}
    # two prefill services: ambiguous without roles, resolved with them
    with pytest.raises(Unresolved, match="pf, pf2 .* all have subComponentType prefill.*spec.roles.prefill") as exc:
        resolve_pools(dgd(services), None, "team-a/llama")
    assert exc.value.reason == "PoolAmbiguous"
    assert resolve_pools(dgd(services), Roles(prefill="pf2"), "team-a/llama").prefill == "pf2"


def test_missing_pools_name_what_is_missing():
    with pytest.raises(Unresolved, match="no decode pool in DynamoGraphDeployment team-a/llama") as exc:
        resolve_pools(dgd({"prefill": {}}), None, "team-a/llama")
    assert exc.value.reason == "PoolNotFound"
    with pytest.raises(Unresolved, match="spec.roles.decode names service 'nope'"):
        resolve_pools(dgd(DISAGG), Roles(decode="nope"), "team-a/llama")


def test_policy_spec_reads_roles():
    spec = PolicySpec.model_validate({"dgdRef": {"name": "llama"}, "sla": {"ttftMs": 500, "itlMs": 50},
                                      "roles": {"prefill": "pf", "decode": "dec"}})
    assert spec.roles == Roles(prefill="pf", decode="dec")


def member(key, targets, floors=None, priority=0, gpus=None):
    return Member(key, "prefill", "decode", targets, floors or {"prefill": 1, "decode": 1}, priority, gpus)


def test_budget_round_cuts_the_lower_priority_first_never_below_minimums():
    high = member("a/high", {"prefill": 3, "decode": 3}, priority=5)
    low = member("a/low", {"prefill": 3, "decode": 3}, priority=1)
    alloc, targets, conds = budget_round([high, low], budget=8)
    assert targets["a/high"] == {"prefill": 3, "decode": 3}
    assert targets["a/low"] == {"prefill": 1, "decode": 1}
    assert alloc.granted_gpus == 8
    assert conds["a/high"][:3] == ("BudgetLimited", False, "WithinBudget")
    kind, limited, reason, message = conds["a/low"]
    assert limited and reason == "FleetGPUBudget"
    assert "GPU budget of 8 GPUs" in message and "prefill 3 -> 1" in message and "priority 1" in message


def test_budget_round_honours_pins_and_gpu_sizes():
    # the low-priority DGD's decode pool is pinned at 3 (floor = target): the budget cannot cut it
    high = member("a/high", {"prefill": 2, "decode": 2}, priority=5, gpus={"prefill": 2, "decode": 2})
    low = member("a/low", {"prefill": 2, "decode": 3}, floors={"prefill": 1, "decode": 3}, priority=0)
    _, targets, conds = budget_round([high, low], budget=10)
    assert targets["a/low"]["decode"] == 3
    assert targets["a/low"]["prefill"] == 1
    # what is left after the floors goes to the higher priority, in whole 2-GPU replicas
    assert sum(targets["a/high"].values()) * 2 + 4 <= 10
    assert conds["a/high"][1] and conds["a/low"][1]


def test_budget_round_within_budget_changes_nothing():
    ms = [member("a/x", {"prefill": 1, "decode": 2}), member("b/y", {"prefill": 2, "decode": 1}, priority=3)]
    _, targets, conds = budget_round(ms, budget=100)
    assert targets == {"a/x": {"prefill": 1, "decode": 2}, "b/y": {"prefill": 2, "decode": 1}}
    assert not any(c[1] for c in conds.values())


def test_a_first_round_keeps_what_a_dgd_holds_in_its_pools():
    # hi holds prefill 1, decode 2 and now wants 2 + 2; the budget leaves it 3 GPUs. A planner with
    # no allocation of its own (a standby that just took the lease) must not move a GPU from decode
    # to prefill: the decode worker would drain before the prefill one could start
    hi = member("a/hi", {"prefill": 2, "decode": 2}, priority=2)
    pinned = member("a/pin", {"prefill": 3, "decode": 3}, floors={"prefill": 3, "decode": 3})
    held = {"a/hi": Holding(prefill=1, decode=2), "a/pin": Holding(prefill=3, decode=3)}
    _, targets, _ = budget_round([hi, pinned], budget=9, held=held)
    assert targets["a/hi"] == {"prefill": 1, "decode": 2}
    # without what it holds the tie goes to prefill: the reshuffle the rule prevents
    _, blind, _ = budget_round([hi, pinned], budget=9)
    assert blind["a/hi"] == {"prefill": 2, "decode": 1}


def pods(svc: str, live: int, deleting: int = 0, finished: int = 0) -> list[PodState]:
    return ([PodState(service=svc, phase="Running", deleting=False) for _ in range(live)]
            + [PodState(service=svc, phase="Running", deleting=True) for _ in range(deleting)]
            + [PodState(service=svc, phase="Succeeded", deleting=False) for _ in range(finished)])


def test_holding_counts_pods_being_deleted_and_replicas_asked_for_but_not_there_yet():
    m = member("a/x", {"prefill": 1, "decode": 3})
    # decode: 3 asked for, 2 pods so far (the third is coming); prefill: cut to 1, 2 pods draining
    got = holding(m, {"prefill": 1, "decode": 3},
                  pods("prefill", 1, deleting=2) + pods("decode", 2) + pods("decode", 0, finished=1))
    assert got == Holding(prefill=1, decode=3, prefill_draining=2, decode_draining=0)
    # a decrease just written: the pods are all still there, not yet being deleted
    assert holding(m, {"prefill": 1, "decode": 1}, pods("decode", 3)).decode == 3


def test_a_raise_waits_for_the_draining_workers_of_the_dgd_that_gave_way():
    # budget 8: lo held 4 (2 + 2) and is cut to its minimum; hi wants 2 + 4
    hi = member("a/hi", {"prefill": 2, "decode": 4}, priority=2)
    lo = member("a/lo", {"prefill": 2, "decode": 2}, priority=0)
    alloc, granted, _ = budget_round([hi, lo], budget=8)
    assert granted == {"a/hi": {"prefill": 2, "decode": 4}, "a/lo": {"prefill": 1, "decode": 1}}
    # lo's cut workers still drain: hi is raised only into the GPU nobody holds
    held = {"a/hi": holding(hi, {"prefill": 1, "decode": 2}, pods("prefill", 1) + pods("decode", 2)),
            "a/lo": holding(lo, {"prefill": 1, "decode": 1}, pods("prefill", 1, 1) + pods("decode", 1, 1))}
    targets, notes = admit_round([hi, lo], alloc, held, budget=8)
    assert targets["a/lo"] == {"prefill": 1, "decode": 1}  # the decrease applies at once
    # one of hi's two raises: hi 3 + 1, lo 2 running + 2 draining: 8
    assert sum(targets["a/hi"].values()) == 4
    assert "not yet to the" in " ".join(notes["a/hi"]) and "a/lo" not in notes
    # once they are gone, hi gets all it was granted
    held["a/lo"] = holding(lo, {"prefill": 1, "decode": 1}, pods("prefill", 1) + pods("decode", 1))
    targets, notes = admit_round([hi, lo], alloc, held, budget=8)
    assert targets["a/hi"] == {"prefill": 2, "decode": 4} and not notes


@pytest.mark.parametrize(("text", "message"), [
    ("planner: {}\n", "give exactly one of `deployment` (one DGD) and `fleet`"),
    ("fleet: {namespaces: [a]}\ndeployment: {name: x, namespace: a, prefill_service: p, decode_service: d}\n",
     "not both"),
    ("fleet: {namespaces: []}\n", "fleet.namespaces: List should have at least 1 item"),
    ("fleet: {namespaces: [a, a]}\n", "fleet.namespaces: Value error, listed more than once: a"),
    ("fleet: {namespaces: [a], gpu_budget: 0}\n", "fleet.gpu_budget: Input should be greater than or equal to 1"),
    ("fleet: {namespaces: [a], resync_s: 0.5}\n", "fleet.resync_s: Input should be greater than or equal to 1"),
    ("fleet: {namespaces: [Team_A]}\n", "fleet.namespaces.0: String should match pattern"),
])
def test_fleet_config_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "planner.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert message in str(exc.value)


def test_fleet_config_loads(tmp_path):
    path = tmp_path / "planner.yaml"
    path.write_text("fleet: {namespaces: [team-a, team-b], gpu_budget: 32}\n")
    cfg = load(path)
    assert cfg.deployment is None and cfg.fleet.namespaces == ["team-a", "team-b"] and cfg.fleet.resync_s == 30
