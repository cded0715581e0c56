"""The node pane's basics from /nodes/{node}/status (issue 12) and its wording (edge 25), small terminals (edge 9)."""

from __future__ import annotations

from textual.widgets import Static

from pvetop.ui.detail import NodeDetailScreen, node_basics
from tests.ui.migrate_pilot import select_row, sim_pilot, wait_until
from tests.ui.pilot import settle, wait_for_data


async def test_node_pane_shows_load_average_io_delay_swap_ksm_versions_and_uptime():
    async with sim_pilot() as (sim, app, pilot):
        select_row(app.node_table, "pve-mini1")
        app.node_table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        box = app.screen.query_one("#config", Static)
        await wait_until(pilot, lambda: "load average" in str(box.render()))
        text = str(box.render())
        for label in ("load average", "IO delay", "swap", "KSM sharing", "PVE version", "kernel", "uptime"):
            assert label in text, label
        fields = str(app.screen.query_one("#fields", Static).render())
        assert "not the load average" in fields  # edge 25: the balance figure does not read like one


def test_psi_is_shown_where_pve_gives_it():
    lines = dict(node_basics({"pressurecpusome": 1.25, "loadavg": ["0.1", "0.2", "0.3"]}))
    assert lines["PSI cpusome"] == "1.25" and lines["load average"] == "0.1 0.2 0.3"
    assert node_basics({}) == []


async def test_edge_09_the_config_box_keeps_rows_at_80x24(app):
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_data(pilot)
        await pilot.press("enter")
        await settle(pilot)
        config = app.screen.query_one("#detail-config")
        assert config.size.height >= 4
