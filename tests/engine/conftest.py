"""Fixtures for engine tests: a manual-clock homelab sim, a client on it, an empty rules store."""

from __future__ import annotations

import pytest

from pvetop.store import open_store
from tests.engine.simdrive import connect, running_sim


@pytest.fixture
def sim():
    with running_sim() as running:
        yield running


@pytest.fixture
def client(sim):
    with connect(sim) as api:
        yield api


@pytest.fixture
def store(tmp_path):
    with open_store(str(tmp_path / "rules.sqlite")) as opened:
        yield opened
