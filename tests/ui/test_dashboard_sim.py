"""The dashboard against the simulator through the real client: what `pvetop --demo` runs."""

from __future__ import annotations

import pytest
import requests
from textual.widgets import Static

from pvetop.config import settings_from_sim_info
from pvetop.pve import PveClient
from pvetop.sim.runner import start_sim
from pvetop.ui.app import PvetopApp
from pvetop.ui.detail import GuestDetailScreen
from pvetop.ui.sparkline import ScaledSparkline
from tests.ui.pilot import settle, wait_for_data

SIZE = (140, 40)


@pytest.fixture
def sim():
    with start_sim(scenario="homelab", seed=1, port=0, manual_clock=True) as running:
        yield running


@pytest.fixture
def client(sim):
    with PveClient.connect(settings_from_sim_info(sim.info), clock=sim.cluster.clock.now) as connected:
        yield connected


def set_faults(sim, **faults) -> None:
    response = requests.post(f"{sim.info['control_url']}/faults", json=faults, verify=sim.info["ca_file"], timeout=10)
    response.raise_for_status()


def header_text(app) -> str:
    return str(app.query_one("#header", Static).render())


async def test_tables_hold_the_simulated_cluster(sim, client):
    expected = client.fetch_snapshot()
    app = PvetopApp(client, interval=60)  # polls only when a test presses ctrl+r
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        assert sorted(app.node_table.keys_in_order) == sorted(n.name for n in expected.nodes)
        assert sorted(app.guest_table.keys_in_order, key=int) == sorted(str(g.vmid) for g in expected.guests)
        for guest in expected.guests:
            assert app.guest_table.cell_text(str(guest.vmid), "name") == (guest.name or "-")
        assert app.latest.snapshot.api_requests <= 2
        sim.cluster.step(10)
        await pilot.press("ctrl+r")
        await settle(pilot)
        rates = app.latest.rates  # two snapshots 10 simulated seconds apart: traffic rates
        moved = {vmid: g.netin for vmid, g in app.latest.snapshot.guest_by_vmid.items()}
        first = {g.vmid: g.netin for g in expected.guests}
        vmid = next(v for v, (netin, _) in rates.items() if netin > 0)
        assert rates[vmid][0] == (moved[vmid] - first[vmid]) / 10


async def test_an_outage_marks_the_data_stale_and_the_next_poll_recovers(sim, client):
    app = PvetopApp(client, interval=60)  # polls only when a test presses ctrl+r
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        shown = list(app.guest_table.keys_in_order)
        set_faults(sim, outage_seconds=600)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.stale and "STALE since" in header_text(app)
        assert app.guest_table.keys_in_order == shown  # the last data stays on screen
        sim.cluster.step(601)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert not app.stale and "STALE" not in header_text(app)


async def test_guest_detail_fetches_history_and_config_for_that_guest_only(sim, client):
    app = PvetopApp(client, interval=60)  # polls only when a test presses ctrl+r
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        sim.cluster.step(600)  # ten minutes of history
        before = client.request_count
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GuestDetailScreen)
        assert client.request_count - before == 2  # rrddata + config, nothing else
        assert any(sparkline.data for sparkline in screen.query(ScaledSparkline))
        assert str(screen.vmid) in str(screen.query_one("#detail-title", Static).render())


async def test_keys_work_against_the_simulated_cluster(sim, client):
    app = PvetopApp(client, interval=60)  # polls only when a test presses ctrl+r
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        table = app.guest_table
        snapshot = app.latest.snapshot
        busiest = max((g for g in snapshot.guests if g.running), key=lambda g: g.cpu)
        table.select_key("103")
        await pilot.press("P")  # sort by CPU, busiest first
        assert table.keys_in_order[0] == str(busiest.vmid)
        assert table.cursor_key == "103"  # the cursor stayed on its guest
        await pilot.press("slash", *"nextcloud", "enter")
        assert table.keys_in_order == ["103"]
        await pilot.press("escape")
        assert len(table.keys_in_order) == len(snapshot.guests)
        await pilot.press("plus", "minus", "minus")
        assert app.interval == 10.0  # 60 is the longest; then 30, then 10
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape", "ctrl+p", *"sort nodes by mem%")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.node_table.sort_column == "mem_pct"


async def test_read_only_greys_out_and_refuses_migrations(sim, client):
    for read_only in (False, True):
        app = PvetopApp(client, interval=60, read_only=read_only)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            main = app.screen
            assert (app.check_action("migrate", ()) is None) is read_only
            await pilot.press("m")
            await settle(pilot)
            assert (app.screen is main) is read_only  # read-only: no migrate dialog
            assert ("READ-ONLY" in header_text(app)) is read_only
