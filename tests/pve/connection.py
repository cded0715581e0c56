"""Connection settings for a simulated cluster, and a port nothing listens on."""

from __future__ import annotations

import socket
from dataclasses import replace

from pvetop.config import ConnectionSettings, settings_from_sim_info
from pvetop.sim.runner import RunningSim


def token_settings(sim: RunningSim, **changes) -> ConnectionSettings:
    return replace(settings_from_sim_info(sim.info), **changes)


def password_settings(sim: RunningSim, **changes) -> ConnectionSettings:
    info = sim.info
    base = ConnectionSettings(
        hosts=((info["host"], info["port"]),), user=info["user"], password=info["password"], verify=info["ca_file"]
    )
    return replace(base, **changes)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound then released, so no other test holds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
