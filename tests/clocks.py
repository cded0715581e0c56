"""Clocks that tests control, for code that takes ``clock=`` (a callable returning epoch seconds)."""

from __future__ import annotations

import itertools

START = 1_800_000_000.0


class ManualClock:
    """Stands still until the test moves ``now``; one clock can serve several instances."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class StepClock:
    """Each reading is one second after the previous one: orderings are deterministic."""

    def __init__(self, start: float = START) -> None:
        self._ticks = itertools.count()
        self.start = start

    def __call__(self) -> float:
        return self.start + next(self._ticks)
