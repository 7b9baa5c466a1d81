"""The DynamoScalingPolicy spec <-> control state mapping, and what a REST change writes. Pure."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from scaler.control.policy import (
    PolicySpec,
    _owned,
    edit_for_change,
    spec_to_state,
    state_to_spec,
)
from scaler.control.state import ControlState, Override, SLATargets

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SPEC = {"dgdRef": {"name": "llama"}, "sla": {"ttftMs": 300, "itlMs": 20}, "attainmentTarget": 0.95,
        "priority": 5, "mode": "advisory",
        "pools": [{"name": "decode", "minReplicas": 1, "maxReplicas": 6}, {"name": "prefill", "maxReplicas": 4}],
        "pins": [{"pool": "decode", "replicas": 3, "expiresAt": "2026-12-01T13:00:00Z"},
                 {"pool": "gone", "replicas": 1, "expiresAt": "2026-12-01T11:00:00Z"}]}


def test_spec_maps_to_state_pins_win_and_expired_are_dropped():
    st = spec_to_state(PolicySpec.model_validate(SPEC), NOW)
    assert (st.sla.ttft_ms, st.sla.itl_ms, st.sla.attainment_target) == (300, 20, 0.95)
    assert st.advisory and not st.paused
    assert st.overrides["decode"].replicas == 3  # the pin, not the bounds
    assert st.overrides["prefill"] == Override(max_replicas=4)
    assert "gone" not in st.overrides  # expired pin: not in the effective state
    assert spec_to_state(PolicySpec.model_validate({**SPEC, "mode": "paused"}), NOW).paused


def test_state_round_trips_through_a_spec():
    st = ControlState(sla=SLATargets(ttft_ms=400, itl_ms=30), paused=True,
                      overrides={"decode": Override(replicas=2, reason="r", set_by="alice"),
                                 "prefill": Override(min_replicas=1, max_replicas=3)})
    spec = state_to_spec(st, "llama")
    assert spec.dump()["mode"] == "paused" and spec.dump()["pins"] == [
        {"pool": "decode", "replicas": 2, "reason": "r", "setBy": "alice"}]
    back = spec_to_state(PolicySpec.model_validate(spec.dump()), NOW)
    assert back.overrides == {k: v.model_copy(update={"set_at": None}) for k, v in st.overrides.items()}
    assert back.paused and back.sla == st.sla


@pytest.mark.parametrize(("patch", "field"), [
    ({"sla": {"ttftMs": 0, "itlMs": 20}}, "sla.ttftMs"),
    ({"mode": "sometimes"}, "mode"),
    ({"pins": [{"pool": "decode", "replicas": -1}]}, "pins.0.replicas"),
    ({"attainmentTarget": 1.0}, "attainmentTarget"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_specs_are_refused_naming_the_field(patch, field):
    """Field paths in the CRD's own (camelCase) names, as kubectl users wrote them."""
    with pytest.raises(ValidationError) as err:
        PolicySpec.model_validate({**SPEC, **patch})
    assert field in [".".join(str(p) for p in e["loc"]) for e in err.value.errors()]


def test_a_rest_change_edits_only_what_changed():
    before = spec_to_state(PolicySpec.model_validate(SPEC), NOW)
    after = spec_to_state(PolicySpec.model_validate(SPEC), NOW)
    after.overrides["prefill"] = Override(replicas=2, set_by="bob")
    after.paused = True
    spec, removed = edit_for_change({"dgdRef": {"name": "llama"}}, before, after)
    # only the new pin and the mode: nothing else is claimed by the REST manager
    assert spec == {"dgdRef": {"name": "llama"}, "mode": "paused",
                    "pins": [{"pool": "prefill", "replicas": 2, "setBy": "bob"}]}
    assert removed == []
    # deleting the effective override of decode removes its pin (its bounds then apply)
    gone = spec_to_state(PolicySpec.model_validate(SPEC), NOW)
    del gone.overrides["decode"]
    spec, removed = edit_for_change({"pins": [{"pool": "decode", "replicas": 3}]}, before, gone)
    assert "pins" not in spec and removed == [("pins", "decode")]
    # the SLA without the attainment target leaves the attainment target alone
    sla = spec_to_state(PolicySpec.model_validate(SPEC), NOW)
    sla.sla = SLATargets(ttft_ms=250, itl_ms=20, attainment_target=0.95)
    assert edit_for_change({}, before, sla)[0] == {"sla": {"ttftMs": 250, "itlMs": 20}}


def test_managed_fields_give_a_managers_own_apply_configuration():
    obj = {"spec": {"mode": "active", "sla": {"ttftMs": 1, "itlMs": 2},
                    "pins": [{"pool": "a", "replicas": 1, "reason": "x"}, {"pool": "b", "replicas": 2}]}}
    fields = {"f:spec": {"f:mode": {}, "f:pins": {'k:{"pool":"b"}': {".": {}, "f:pool": {}, "f:replicas": {}}}}}
    assert _owned(fields, obj) == {"spec": {"mode": "active", "pins": [{"pool": "b", "replicas": 2}]}}
