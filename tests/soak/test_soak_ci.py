"""The CI profile of the chaos soak: homelab (failure margin 0) for a simulated day and smb
(failure margin 1) through one whole fault cycle, side by side under xdist.

From the simulator's night start the balancer and the power policy act in ``auto`` (nodes sleep
and wake), every fault of the schedule is injected (the crashes and the nodes' return, lost
migrate answers, migrations failing in their RAM phase, the API endpoint node powering off), and
every invariant holds throughout. The headless dashboard and its lag check run in the long
profile, ``python tests/soak/run.py --hours N``. Here, beside the rest of the suite on 2 cores,
its lag p99 sits at the limit: 63 ms of its own work at load 3.6, but 101 ms at load 5 (opening
a guest's detail screen, ~140 ms, every 39 s of the walk), so a check of it here would fail at
random; the long profile, run alone, judges it (a simulated week: p99 55-58 ms).
"""

from __future__ import annotations

import pytest

from tests.soak.soak import CYCLE, HOUR, SCHEDULE, Soak

HOURS = {"homelab": 24.0, "smb": CYCLE / HOUR + 1}  # simulated hours per scenario


@pytest.mark.slow(seconds=150)
@pytest.mark.parametrize("scenario", sorted(HOURS))
async def test_soak_breaks_nothing(scenario):
    soak = Soak(scenario, seed=1, dashboard=False)
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
    assert all(figures.checks[name] > 0 for name in made), report
