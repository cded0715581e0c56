"""Simulated clusters and a client on them, for testing the client the way it talks to Proxmox VE."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pvetop.pve import PveClient
from pvetop.sim.runner import RunningSim, start_sim
from tests.pve.connection import token_settings


@pytest.fixture(scope="module")
def homelab() -> Iterator[RunningSim]:
    """A shared homelab sim for tests that only read (module scope: started once per file)."""
    with start_sim(scenario="homelab", seed=1, port=0, manual_clock=True) as sim:
        yield sim


@pytest.fixture
def fresh_homelab() -> Iterator[RunningSim]:
    """A homelab sim of its own, for tests that change the cluster."""
    with start_sim(scenario="homelab", seed=1, port=0, manual_clock=True) as sim:
        yield sim


@pytest.fixture
def client(homelab) -> Iterator[PveClient]:
    with PveClient.connect(token_settings(homelab)) as connected:
        yield connected
