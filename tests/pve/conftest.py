"""Simulated clusters and helpers for testing the client the way it talks to Proxmox VE."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pvetop.config import ConnectionSettings, settings_from_sim_info
from pvetop.pve import PveClient
from pvetop.sim.runner import RunningSim, start_sim


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


def token_settings(sim: RunningSim, **changes) -> ConnectionSettings:
    return replace(settings_from_sim_info(sim.info), **changes)


def password_settings(sim: RunningSim, **changes) -> ConnectionSettings:
    info = sim.info
    base = ConnectionSettings(
        hosts=((info["host"], info["port"]),), user=info["user"], password=info["password"], verify=info["ca_file"]
    )
    return replace(base, **changes)


@pytest.fixture
def client(homelab) -> Iterator[PveClient]:
    with PveClient.connect(token_settings(homelab)) as connected:
        yield connected


def closed_port() -> int:
    """A local TCP port nothing listens on (bound then released, so no other test holds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
