"""``S``: the storage view and a storage's guests, against the simulator (issue 12)."""

from __future__ import annotations

from textual.widgets import DataTable

from pvetop.pve.storage import storage_guests
from pvetop.ui.storage import StorageGuestsScreen, StorageScreen, StorageTable
from tests.engine.simdrive import connect, running_sim
from tests.ui.migrate_pilot import select_row, sim_pilot, wait_until


def test_a_storages_guests_come_from_its_content():
    with running_sim() as sim, connect(sim) as client:
        with sim.cluster.lock:
            expected = {g.vmid for g in sim.cluster.guests.values() if any(d.storage == "local-lvm" for d in g.disks)
                        and g.node == "pve-mini1"}  # fmt: skip
        assert set(storage_guests(client, "pve-mini1", "local-lvm")) == expected and expected


async def test_storage_view_sorts_filters_and_lists_a_storages_guests():
    async with sim_pilot() as (sim, app, pilot):
        await pilot.press("S")
        await wait_until(pilot, lambda: isinstance(app.screen, StorageScreen))
        table = app.screen.query_one(StorageTable)
        await wait_until(pilot, lambda: table.row_count > 0)
        keys = table.keys_in_order
        assert "local-lvm@pve-mini1" in keys and "local-lvm@pve-big" in keys
        await pilot.press("M")  # the same sort keys as the main tables: by use share
        assert table.sort_column == "mem_pct"
        await pilot.press("slash", *"lvm")
        await wait_until(pilot, lambda: all("lvm" in key for key in table.keys_in_order))
        await pilot.press("enter")
        table.focus()
        select_row(table, "local-lvm@pve-mini1")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StorageGuestsScreen))
        guests = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: guests.row_count > 0)
        with sim.cluster.lock:
            expected = {
                str(g.vmid)
                for g in sim.cluster.guests.values()
                if g.node == "pve-mini1" and any(d.storage == "local-lvm" for d in g.disks)
            }
        assert {row.value for row in guests.rows} == expected
