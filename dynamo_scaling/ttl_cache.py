"""Answers remembered for a while: the review caches of the metrics server and the planner API
(TokenReview and SubjectAccessReview results, allowed and denied for different times)."""

from __future__ import annotations

import time
from collections.abc import Hashable

_MISSING = object()


class TTLCache:
    """A bounded map whose entries expire `ttl_s` after they are put (or after the `ttl_s` given
    to `put`). When full it starts over: cheaper than eviction, and every entry is short-lived."""

    def __init__(self, ttl_s: float, size: int = 10_000) -> None:
        if ttl_s < 0 or size < 1:
            raise ValueError("ttl_s >= 0 and size >= 1 are required")
        self.ttl_s, self.size = ttl_s, size
        self._items: dict[Hashable, tuple[float, object]] = {}

    def get(self, key: Hashable, default: object = None) -> object:
        hit = self._items.get(key, _MISSING)
        if hit is _MISSING:
            return default
        expires, value = hit
        if expires > time.monotonic():
            return value
        self._items.pop(key, None)
        return default

    def put(self, key: Hashable, value: object, ttl_s: float | None = None) -> None:
        if len(self._items) >= self.size and key not in self._items:
            self._items.clear()
        self._items[key] = (time.monotonic() + (self.ttl_s if ttl_s is None else ttl_s), value)

    def __len__(self) -> int:
        return len(self._items)
