"""A fresh store per test on each backend (SQLite, PostgreSQL), with a clock the test moves."""

import pytest

from pvetop.store import open_store
from tests.clocks import StepClock
from tests.store.backends import BACKENDS, Databases, postgres_server  # noqa: F401  (a fixture)


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
