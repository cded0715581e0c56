"""A fresh store per test, with a clock the test moves (no wall-clock dependence)."""

import itertools

import pytest

from pvetop.store import open_store


class StepClock:
    """Each reading is one second after the previous one: orderings are deterministic."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._ticks = itertools.count()
        self.start = start

    def __call__(self) -> float:
        return self.start + next(self._ticks)


@pytest.fixture
def store(tmp_path):
    opened = open_store(str(tmp_path / "rules.sqlite"), clock=StepClock())
    yield opened
    opened.close()
