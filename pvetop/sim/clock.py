"""Simulated time: manual (moves only with ``advance``) or wall-clock time scaled by a speed."""

from __future__ import annotations

import time


class SimClock:
    """Seconds since the Unix epoch in simulated time.

    Manual clocks make tests deterministic: nothing changes unless the test steps. Live clocks
    run ``speed`` times faster than real time; changing the speed rebases so time never jumps.
    """

    def __init__(self, start: float, *, speed: float = 1.0, manual: bool = False):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.manual = manual
        self._speed = speed
        self._base = float(start)
        self._wall_base = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        if self.manual:
            return self._base
        return self._base + (time.monotonic() - self._wall_base) * self._speed

    def advance(self, seconds: float) -> None:
        """Jumps ahead by ``seconds`` of simulated time (both modes)."""
        if seconds < 0:
            raise ValueError("cannot step backwards in time")
        self._base += seconds

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._base = self.now()
        self._wall_base = time.monotonic()
        self._speed = speed
