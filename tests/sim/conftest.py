"""Shared simulator fixtures: started sims that are always stopped, on a manual clock.

``make_sim(scenario, **start_sim_options)`` starts as many sims as a test needs (manual clock
unless told otherwise); ``homelab`` is the common case. Talk to them with
``tests.sim.clients.token_api(sim.info)``.
"""

from __future__ import annotations

import pytest

from pvetop.sim.runner import RunningSim, start_sim


@pytest.fixture
def make_sim():
    started: list[RunningSim] = []

    def factory(scenario: str = "homelab", **options) -> RunningSim:
        options.setdefault("manual_clock", True)
        sim = start_sim(scenario=scenario, **options)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def homelab(make_sim) -> RunningSim:
    return make_sim("homelab")
