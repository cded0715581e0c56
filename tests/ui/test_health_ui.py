"""``H``: cluster and HA health against the simulator; node HA state in the node table (issue 12)."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from pvetop.pve.health import fetch_cluster_health
from pvetop.ui.health import HealthScreen
from tests.engine.simdrive import connect, running_sim
from tests.ui.migrate_pilot import sim_pilot, wait_until


def test_health_reads_quorum_members_master_and_resources():
    with running_sim() as sim, connect(sim) as client:
        health = fetch_cluster_health(client)
    assert health.quorate and health.votes_total == 3 and health.votes_needed == 2 and health.votes_present == 3
    assert [m.name for m in health.members] == ["pve-big", "pve-mini1", "pve-mini2"]
    assert all(m.ha_state == "online" and m.lrm for m in health.members)
    assert health.master in {m.name for m in health.members}
    assert {r.sid for r in health.resources} >= {"vm:100"}


async def test_health_view_and_node_ha_column():
    async with sim_pilot() as (sim, app, pilot):
        assert app.node_table.cell_text("pve-mini1", "hastate") == "online"
        await pilot.press("H")
        await wait_until(pilot, lambda: isinstance(app.screen, HealthScreen))
        screen = app.screen
        await wait_until(pilot, lambda: "votes" in str(screen.query_one("#health-summary", Static).render()))
        summary = str(screen.query_one("#health-summary", Static).render())
        assert "quorate, votes 3 present / 2 needed / 3 total" in summary and "HA master" in summary
        resources = screen.query_one("#health-resources", DataTable)
        assert resources.row_count >= 1
        row = resources.get_row("vm:100")
        assert row[2] == "started"
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]
