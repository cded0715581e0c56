"""The CI profile of the chaos soak: homelab (failure margin 0) for a simulated day and smb
(failure margin 1) through one whole fault cycle, side by side under xdist.

From the simulator's night start the balancer and the power policy act in ``auto`` (nodes sleep
and wake), every fault of the schedule is injected (the crashes and the nodes' return, lost
migrate answers, migrations failing in their RAM phase, the API endpoint node powering off), and
every invariant holds throughout. On homelab the real dashboard runs beside them, headless in a
process of its own, walking through its screens, with its event-loop lag checked (p99 of its own
work ≤ 100 ms) and its output searched for tracebacks and secrets; smb, which keeps both cores
busy on its own, runs without it here (the long profile, ``python tests/soak/run.py --hours N``,
runs it with every scenario).
"""

from __future__ import annotations

import pytest

from tests.soak.soak import CYCLE, HOUR, SCHEDULE, Soak

HOURS = {"homelab": 24.0, "smb": CYCLE / HOUR + 1}  # simulated hours per scenario
WITH_DASHBOARD = {"homelab"}


@pytest.mark.slow(seconds=150)
@pytest.mark.parametrize("scenario", sorted(HOURS))
async def test_soak_breaks_nothing(scenario):
    soak = Soak(scenario, seed=1, dashboard=scenario in WITH_DASHBOARD)
    figures = await soak.run(HOURS[scenario])
    report = figures.report()
    assert figures.failed == 0, report
    assert set(figures.faults) == {fault.kind for fault in SCHEDULE}, report
    assert soak.crashed_nodes, report
    assert figures.moves > 0 and figures.power_offs > 0, report  # the automation did act
    if scenario == "smb":  # homelab moves a few guests a day: these faults rarely meet a move there
        assert figures.struck["migrate answer lost"] > 0 and figures.ram_failures > 0, report
    assert figures.checks["quorum and failure margin"] > 100, report
    made = ("rules respected", "writes journaled", "guests kept", "HA never moves a guest back", "no secret shown")
    if scenario in WITH_DASHBOARD:
        made += ("dashboard lag p99",)
        assert len(figures.own_lags) > 1000, report  # the dashboard ran all along, probed every 50 ms
    assert all(figures.checks[name] > 0 for name in made), report
