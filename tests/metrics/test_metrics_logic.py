"""Selectors, quantities and the signal mapping: pure logic."""

from __future__ import annotations

import pytest

from external_metrics.quantity import format_quantity
from external_metrics.selectors import SelectorError, matches, parse
from external_metrics.signals import DEFAULT_SIGNALS, load_signals, render

LABELS = {"namespace": "prod", "dgd": "llama", "service": "decode", "model": "m"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [("", True), ("service=decode", True), ("service==decode,dgd=llama", True), ("service!=decode", False),
     ("service in (prefill, decode)", True), ("service notin (decode)", False), ("model", True), ("!model", False),
     ("dgd=llama,service in (prefill)", False)],
)
def test_selectors(selector, expected):
    assert matches(parse(selector), LABELS) is expected


@pytest.mark.parametrize("bad", ["service in (a", "=x", "service=de code", "a,,b", "ser vice=x", "x" * 5000])
def test_bad_selectors_are_errors(bad):
    with pytest.raises(SelectorError):
        parse(bad)


def test_quantities():
    assert format_quantity(3) == "3" and format_quantity(1.5) == "1500m" and format_quantity(0.7234) == "723m"
    with pytest.raises(ValueError):
        format_quantity(float("nan"))


def test_mapping_covers_both_kv_families_and_is_overridable(tmp_path):
    q = render(DEFAULT_SIGNALS["dynamo_kv_cache_usage"])
    assert "dynamo_component_kvstats_active_blocks" in q and "vllm:kv_cache_usage_perc" in q
    f = tmp_path / "s.yaml"
    f.write_text("dynamo_queue_depth:\n  query: sum by ({by}) (my_queue)\nmy_signal:\n  query: sum by ({by}) (x)\n")
    sig = load_signals(f)
    assert render(sig["dynamo_queue_depth"]).startswith("sum by (namespace") and "my_signal" in sig
