"""The decode load path trusts how full workers report they are (KV usage, sequence slots), whatever
capacity the profile assumed."""

from __future__ import annotations

import pytest

from scaler.planner.sizing import measured_decode_need
from scaler.policy import PoolObservation


def test_full_workers_with_a_queue_ask_for_more():
    full = PoolObservation(active=1, running_requests=24, queued_requests=24, kv_usage=0.96)
    assert measured_decode_need(full, kv_headroom=0.8) == pytest.approx(1 * 0.96 * 2 / 0.8)


def test_no_usage_known_or_idle_adds_nothing():
    assert measured_decode_need(PoolObservation(active=2, running_requests=5), 0.8) == 0
    assert measured_decode_need(PoolObservation(active=0, kv_usage=0.5), 0.8) == 0
    assert measured_decode_need(PoolObservation(active=3, kv_usage=0.0), 0.8) == 0


def test_light_usage_fits_in_fewer_workers():
    light = PoolObservation(active=4, running_requests=8, queued_requests=0, kv_usage=0.1)
    assert measured_decode_need(light, 0.8) == pytest.approx(0.5)


def test_workers_out_of_sequence_slots_ask_for_more_with_kv_to_spare():
    slots_full = PoolObservation(active=1, running_requests=256, queued_requests=128, kv_usage=0.5)
    assert measured_decode_need(slots_full, kv_headroom=0.8, max_seqs=256) == pytest.approx(1.5 / 0.8)
    assert measured_decode_need(slots_full, kv_headroom=0.8) == pytest.approx(0.5 * 1.5 / 0.8)
