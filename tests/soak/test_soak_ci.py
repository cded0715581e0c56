"""The CI profile of the chaos soak: homelab (failure margin 0) through one whole fault cycle.

Seven simulated hours from the simulator's night start: the balancer and the power policy act in
``auto`` (pve-big sleeps), every fault of the schedule is injected once (the crash and the
node's return included), and every invariant holds throughout. The long profile is
``python tests/soak/run.py --hours N``.
"""

from __future__ import annotations

from tests.soak.soak import CYCLE, HOUR, SCHEDULE, Soak


async def test_homelab_soak_through_one_fault_cycle_breaks_nothing():
    soak = Soak("homelab", seed=1)
    figures = await soak.run(CYCLE / HOUR + 1)
    report = figures.report()
    assert figures.failed == 0, report
    assert set(figures.faults) == {fault.kind for fault in SCHEDULE}, report
    assert soak.crashed_nodes, report
    assert figures.moves > 0 and figures.power_offs > 0, report  # the automation did act
    assert figures.checks["quorum and failure margin"] > 100, report
    assert all(figures.checks[name] > 0 for name in ("rules respected", "writes journaled", "guests kept")), report
