"""The ownership rules of adapter/sync.py as tables, without a cluster: which adapter owns a DGD
service, what every other adapter reports, and what the DGD side creates, adopts and deletes."""

from __future__ import annotations

import pytest

from adapter.models import DGD
from adapter.sync import (
    AdapterInfo,
    judge,
    owns_outright,
    plan_adapters,
    service_owners,
)

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"


def dgd(**flags: bool) -> DGD:
    """DGD `llama` with services prefill, VllmDecodeWorker and Frontend; a keyword sets a flag."""
    services = {s: {"replicas": 1, "scalingAdapter": {"enabled": flags.get(s, s != "Frontend")}}
                for s in ("prefill", "VllmDecodeWorker", "Frontend")}
    return DGD.model_validate({"metadata": {"name": "llama", "uid": "u1"}, "spec": {"services": services}})


def a(name: str, service: str, created: str = T0, owned: bool = False, dgd_name: str = "llama",
      deleting: bool = False) -> AdapterInfo:
    return AdapterInfo(name, dgd_name, service, created, owned, deleting)


FLAGGED = a("llama-vllmdecodeworker", "VllmDecodeWorker", T1, owned=True)

OWNER_CASES = [
    # (what, adapters, expected owner of VllmDecodeWorker)
    ("only the flag's adapter", [FLAGGED], "llama-vllmdecodeworker"),
    ("flag's adapter beats an older stray", [a("extra", "VllmDecodeWorker", T0), FLAGGED], "llama-vllmdecodeworker"),
    ("flag's adapter beats a younger stray", [FLAGGED, a("zz", "VllmDecodeWorker", T2)], "llama-vllmdecodeworker"),
    ("adopted stray keeps it against a later canonical name",
     [a("old", "VllmDecodeWorker", T0, owned=True), a("llama-vllmdecodeworker", "VllmDecodeWorker", T2)], "old"),
    ("unowned canonical name beats an older stray",
     [a("old", "VllmDecodeWorker", T0), a("llama-vllmdecodeworker", "VllmDecodeWorker", T2)], "llama-vllmdecodeworker"),
    ("oldest stray when nothing is owned", [a("aa-new", "VllmDecodeWorker", T2), a("zz-old", "VllmDecodeWorker", T0)],
     "zz-old"),
    ("same second: the name decides", [a("b", "VllmDecodeWorker", T0), a("a", "VllmDecodeWorker", T0)], "a"),
    ("oldest of two adopted", [a("b", "VllmDecodeWorker", T0, owned=True), a("a", "VllmDecodeWorker", T1, owned=True)],
     "b"),
    ("an adapter being deleted owns nothing",
     [a("llama-vllmdecodeworker", "VllmDecodeWorker", T0, owned=True, deleting=True), a("x", "VllmDecodeWorker", T1)],
     "x"),
    ("a misnamed adapter never owns", [a("llama-prefill", "VllmDecodeWorker", T0, owned=True)], None),
    ("another DGD's adapter does not count", [a("x", "VllmDecodeWorker", T0, dgd_name="other")], None),
    ("service names are case sensitive", [a("x", "vllmdecodeworker", T0)], None),
    ("no adapter, no owner", [], None),
]


@pytest.mark.parametrize("adapters,owner", [c[1:] for c in OWNER_CASES], ids=[c[0] for c in OWNER_CASES])
def test_owner_of_a_service(adapters, owner):
    assert service_owners(dgd(), adapters).get("VllmDecodeWorker") == owner
    # the order the API server lists them in does not matter
    assert service_owners(dgd(), list(reversed(adapters))).get("VllmDecodeWorker") == owner


def test_unflagged_service_has_no_owner():
    assert "Frontend" not in service_owners(dgd(), [a("front", "Frontend", owned=True)])


VERDICT_CASES = [
    # (what, the adapter judged, the others, owns, reason, words the message must contain)
    ("the flag's adapter", FLAGGED, [a("extra", "VllmDecodeWorker", T0)], True, None, []),
    ("a second adapter for the service", a("extra", "VllmDecodeWorker", T2), [FLAGGED], False, "DuplicateAdapter",
     ["llama-vllmdecodeworker", "VllmDecodeWorker"]),
    ("a younger stray beside an older one", a("aa-new", "VllmDecodeWorker", T2), [a("zz-old", "VllmDecodeWorker", T0)],
     False, "DuplicateAdapter", ["zz-old"]),
    ("the older stray", a("zz-old", "VllmDecodeWorker", T0), [a("aa-new", "VllmDecodeWorker", T2)], True, None, []),
    ("a lone stray for a flagged service", a("mine", "prefill"), [], True, None, []),
    ("named for prefill, refers to VllmDecodeWorker", a("llama-prefill", "VllmDecodeWorker", T0), [FLAGGED],
     False, "ServiceMismatch", ["prefill", "VllmDecodeWorker", "llama-vllmdecodeworker"]),
    ("misnamed even if the DGD adopted it earlier", a("llama-prefill", "VllmDecodeWorker", T0, owned=True), [],
     False, "ServiceMismatch", ["prefill"]),
    ("misnamed for an unflagged service", a("llama-frontend", "prefill"), [], False, "ServiceMismatch", ["Frontend"]),
    ("a service without the flag", a("front", "Frontend"), [], False, "AdapterNotEnabled",
     ["Frontend", "scalingAdapter.enabled"]),
    ("the canonical name of a service without the flag", a("llama-frontend", "Frontend", owned=True), [],
     False, "AdapterNotEnabled", ["Frontend"]),
    ("a service the DGD lacks is left to plan_sync", a("x", "decode"), [], True, None, []),
]


@pytest.mark.parametrize("me,others,owns,reason,words", [c[1:] for c in VERDICT_CASES],
                         ids=[c[0] for c in VERDICT_CASES])
def test_verdict_of_an_adapter(me, others, owns, reason, words):
    v = judge(dgd(), me, [me, *others])
    assert (v.owns, v.reason) == (owns, reason)
    for w in words:
        assert w in v.message


@pytest.mark.parametrize("me,outright", [
    (FLAGGED, True),
    (a("llama-vllmdecodeworker", "VllmDecodeWorker", owned=False), False),  # not yet adopted
    (a("extra", "VllmDecodeWorker", owned=True), False),  # adopted under another name
    (a("llama-frontend", "Frontend", owned=True), False),  # flag off
    (a("llama-prefill", "VllmDecodeWorker", owned=True), False),  # misnamed
], ids=["flag's adapter", "not owned", "other name", "flag off", "misnamed"])
def test_owns_outright_agrees_with_the_full_rule(me, outright):
    assert owns_outright(dgd(), me) is outright
    if outright:  # the shortcut must never say yes where a full list would say no
        rivals = [a("old", "VllmDecodeWorker", "2000-01-01T00:00:00Z", owned=True), a("a", "VllmDecodeWorker", T0)]
        assert judge(dgd(), me, [me, *rivals]).owns


PLAN_CASES = [
    # (what, flags, adapters, create, adopt, delete)
    ("fresh DGD: one adapter per flagged service", {}, [], ["llama-prefill", "llama-vllmdecodeworker"], [], []),
    ("all there", {}, [FLAGGED, a("llama-prefill", "prefill", owned=True)], [], [], []),
    ("a stray made before the DGD is adopted, not doubled", {}, [a("mine", "VllmDecodeWorker")],
     ["llama-prefill"], ["mine"], []),
    ("the oldest of two strays is adopted", {}, [a("aa-new", "VllmDecodeWorker", T2), a("zz-old", "VllmDecodeWorker", T0)],
     ["llama-prefill"], ["zz-old"], []),
    ("a duplicate is neither adopted nor deleted", {}, [FLAGGED, a("llama-prefill", "prefill", owned=True),
                                                        a("extra", "VllmDecodeWorker", T2)], [], [], []),
    ("a squatted name is not created again", {}, [FLAGGED, a("llama-prefill", "VllmDecodeWorker")], [], [], []),
    ("another DGD's adapter holding the name blocks creation", {},
     [FLAGGED, a("llama-prefill", "x", dgd_name="llama-prefill-dgd")], [], [], []),
    ("flag turned off: the owned adapter goes", {"prefill": False},
     [FLAGGED, a("llama-prefill", "prefill", owned=True)], [], [], ["llama-prefill"]),
    ("flag turned off: an adopted stray goes too", {"VllmDecodeWorker": False},
     [a("llama-prefill", "prefill", owned=True), a("mine", "VllmDecodeWorker", owned=True)], [], [], ["mine"]),
    ("flag off: a stray the DGD never adopted stays", {"VllmDecodeWorker": False},
     [a("llama-prefill", "prefill", owned=True), a("mine", "VllmDecodeWorker")], [], [], []),
    ("an adopted misnamed adapter keeps the name of a wanted service", {},
     [FLAGGED, a("llama-prefill", "VllmDecodeWorker", owned=True)], [], [], []),
    ("an adopted adapter of a removed service goes", {},
     [FLAGGED, a("llama-prefill", "prefill", owned=True), a("llama-gone", "gone", owned=True)], [], [], ["llama-gone"]),
]


@pytest.mark.parametrize("flags,adapters,create,adopt,delete", [c[1:] for c in PLAN_CASES],
                         ids=[c[0] for c in PLAN_CASES])
def test_what_the_dgd_side_does(flags, adapters, create, adopt, delete):
    got = plan_adapters(dgd(**flags), adapters)
    assert sorted(w.name for w in got.create) == create
    assert got.adopt == adopt
    assert got.delete == delete
    assert all(w.service in ("prefill", "VllmDecodeWorker") and w.seed_replicas == 1 for w in got.create)
