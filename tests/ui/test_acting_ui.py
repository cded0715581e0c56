"""Several instances on one rules store: the dashboard says who acts, can take over (journaled),
and shows rules another instance changed at its next refresh."""

from __future__ import annotations

from textual.widgets import Static

from pvetop.store import open_store
from pvetop.ui.acting import install_acting
from pvetop.ui.app import PvetopApp
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.rules import install_rules
from tests.ui.pilot import settle, wait_for_data
from tests.ui.test_dashboard import cell
from tests.ui.test_dashboard_sim import client, sim  # noqa: F401  (fixtures)

SIZE = (140, 40)
CLUSTER = "homelab"


async def wait_until(pilot, condition, rounds: int = 300) -> None:
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not met")


async def test_the_header_names_the_acting_instance_and_ctrl_t_takes_over(client, tmp_path):  # noqa: F811
    path = str(tmp_path / "shared.sqlite")
    with open_store(path) as daemon_store, open_store(path) as dashboard_store:
        held = daemon_store.coordination.claim(CLUSTER, ttl=600)  # a daemon acts, for a long while
        app = PvetopApp(client, interval=60, store=dashboard_store)
        install_acting(app, dashboard_store)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            await wait_until(pilot, lambda: "acting" in app.header_notes)
            note = app.header_notes["acting"]
            assert f"(pid {held.pid})" in note and "advising only" in note and "ctrl+t" in note
            await pilot.press("ctrl+r")
            await settle(pilot)
            assert "advising only" in str(app.query_one("#header", Static).render())

            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert f"(pid {held.pid})" in app.screen.question
            await pilot.press("y")
            await wait_until(pilot, lambda: app.acting.lease.acting)
            assert "acting" not in app.header_notes
            assert not daemon_store.coordination.claim(CLUSTER, ttl=600).acting  # the daemon now only advises
        taken = [e for e in daemon_store.recent_journal(CLUSTER) if e.action == "lease.take_over"]
        assert taken and taken[0].actor == "user" and taken[0].params["previous"] == f"{held.host} (pid {held.pid})"
        assert daemon_store.recent_journal(CLUSTER, limit=1)[0].action == "lease.release"  # quitting hands it back


async def test_a_read_only_dashboard_claims_nothing(client, tmp_path):  # noqa: F811
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        app = PvetopApp(client, interval=60, store=store, read_only=True)
        install_acting(app, store)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            await settle(pilot)
            assert app.acting.lease is None
        assert store.coordination.lease(CLUSTER) is None


async def test_a_pin_added_by_another_instance_shows_at_the_next_refresh(client, tmp_path):  # noqa: F811
    path = str(tmp_path / "shared.sqlite")
    with open_store(path) as mine, open_store(path) as another_instance:
        app = PvetopApp(client, interval=60, store=mine)
        install_rules(app, mine)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            await settle(pilot)
            guest = app.latest.snapshot.guests[0]
            assert "P" not in cell(app.guest_table, str(guest.vmid), "flags")
            another_instance.pin_guest(CLUSTER, guest.vmid, guest.name, [guest.node])
            await pilot.press("ctrl+r")  # one refresh
            await settle(pilot)
            assert "P" in cell(app.guest_table, str(guest.vmid), "flags")
