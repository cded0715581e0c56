"""A fresh store per test on each backend (SQLite, PostgreSQL), with a clock the test moves."""

import itertools

import pytest

from pvetop.store import open_store
from tests.store.backends import BACKENDS, Databases, postgres_server  # noqa: F401  (a fixture)


class StepClock:
    """Each reading is one second after the previous one: orderings are deterministic."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._ticks = itertools.count()
        self.start = start

    def __call__(self) -> float:
        return self.start + next(self._ticks)


@pytest.fixture(params=BACKENDS)
def databases(request, tmp_path):
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    made = Databases(request.param, tmp_path, server)
    yield made
    made.drop_all()


@pytest.fixture
def new_db(databases):
    """``new_db(label)`` gives a ``--db`` value for an empty database of the test's backend."""
    return databases.new


@pytest.fixture
def store(new_db):
    opened = open_store(new_db("rules"), clock=StepClock())
    yield opened
    opened.close()
