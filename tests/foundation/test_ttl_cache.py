"""The review caches' expiring map: answers live for their TTL, per-entry TTLs win, size is bounded."""

from __future__ import annotations

import pytest

from dynamo_scaling.ttl_cache import TTLCache


def test_an_entry_lives_for_its_ttl_and_a_per_entry_ttl_wins():
    cache = TTLCache(ttl_s=3600)
    cache.put("allowed", (True, ""))
    cache.put("denied", (False, "no"), ttl_s=0)  # a denial remembered for no time at all
    assert cache.get("allowed") == (True, "")
    assert cache.get("denied") is None and cache.get("denied", "gone") == "gone"
    assert cache.get("never") is None


def test_a_full_cache_starts_over_but_overwriting_a_key_does_not_empty_it():
    cache = TTLCache(ttl_s=3600, size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("b", 3)
    assert (cache.get("a"), cache.get("b"), len(cache)) == (1, 3, 2)
    cache.put("c", 4)
    assert (cache.get("a"), cache.get("c"), len(cache)) == (None, 4, 1)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="ttl_s"):
        TTLCache(ttl_s=-1)
    with pytest.raises(ValueError, match="size"):
        TTLCache(ttl_s=1, size=0)
