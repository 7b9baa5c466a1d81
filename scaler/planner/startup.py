"""Measure how long new workers take to become active, from what the pools report."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class StartupTracker:
    prior_s: float
    alpha: float = 0.3
    estimate_s: float = 0.0
    samples: int = 0
    _pending: deque[float] = field(default_factory=deque)  # when each still-starting worker appeared
    _last_active: int | None = None
    _last_starting: int = 0

    def __post_init__(self) -> None:
        self.estimate_s = self.prior_s

    def observe(self, now: float, active: int, starting: int) -> None:
        if self._last_active is None:
            self._last_active, self._last_starting = active, starting
            self._pending.extend([now] * starting)
            return
        became_active = max(0, active - self._last_active)
        appeared = max(0, starting - self._last_starting + became_active)
        self._pending.extend([now] * appeared)
        for _ in range(min(became_active, len(self._pending))):
            delay = now - self._pending.popleft()
            self.estimate_s = delay if self.samples == 0 else (1 - self.alpha) * self.estimate_s + self.alpha * delay
            self.samples += 1
        while len(self._pending) > starting:  # workers that were removed while starting
            self._pending.pop()
        self._last_active, self._last_starting = active, starting
