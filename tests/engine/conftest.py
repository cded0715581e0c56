"""Fixtures for engine tests: a client on the suite's manual-clock homelab sim."""

from __future__ import annotations

import pytest

from tests.engine.simdrive import connect


@pytest.fixture
def client(sim):
    with connect(sim) as api:
        yield api
