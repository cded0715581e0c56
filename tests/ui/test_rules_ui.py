"""Pins, locks, reservations and power settings from the detail panes, by key presses.

Each change must reach the store, the tables' flag markers and the journal.
"""

from __future__ import annotations

from textual.widgets import Checkbox, Input, SelectionList, Static

from pvetop.store import open_store
from pvetop.ui import detail
from pvetop.ui.app import PvetopApp
from pvetop.ui.detail import GuestDetailScreen, NodeDetailScreen
from pvetop.ui.rules import install_rules
from pvetop.ui.rules.dialogs import NodeSetDialog, PowerSettingsDialog
from pvetop.ui.rules.journal import JournalScreen, JournalTable
from pvetop.ui.rules.review import ReconcileDialog, SuggestionsDialog
from tests.ui.fixtures import advanced, fixed_clock
from tests.ui.pilot import open_journal, settle, wait_for_data

SIZE = (140, 40)
C = "homelab"


def make_app(source, store, **kwargs):
    app = PvetopApp(source, clock=fixed_clock, **kwargs)
    install_rules(app, store)
    return app


def flags(table, key: str) -> str:
    return table.cell_text(key, "flags")


def journal_actions(store) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.target) for e in reversed(store.recent_journal(C))]


async def open_guest(pilot, vmid: int):
    app = pilot.app
    app.guest_table.focus()
    app.guest_table.move_cursor(row=app.guest_table.keys_in_order.index(str(vmid)))
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, GuestDetailScreen) and app.screen.vmid == vmid
    return app.screen


async def open_node(pilot, node: str):
    app = pilot.app
    app.node_table.focus()
    app.node_table.move_cursor(row=app.node_table.keys_in_order.index(node))
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, NodeDetailScreen) and app.screen.node_name == node
    return app.screen


def panel_text(screen, panel_id: str) -> str:
    return str(screen.query_one(f"#{panel_id}", Static).render())


async def test_pin_here_lock_and_unpin_from_the_guest_pane(source, store):
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        screen = await open_guest(pilot, 101)
        assert "may run anywhere" in panel_text(screen, "guest-rules")
        await pilot.press("o")
        assert store.pin(C, 101).nodes == {"big"} and store.pin(C, 101).name == "web-2"
        assert "big" in panel_text(screen, "guest-rules")
        await pilot.press("l")
        assert store.lock(C, 101) is not None
        assert "locked     yes" in panel_text(screen, "guest-rules")
        await pilot.press("escape")
        assert flags(app.guest_table, "101") == "PL"
        assert app.ruleset.pinned_to(101) == {"big"} and app.ruleset.is_locked(101)
        await open_guest(pilot, 101)
        await pilot.press("o", "l")  # pinned to exactly its node: o unpins; l unlocks
        await pilot.press("escape")
        assert store.pin(C, 101) is None and store.lock(C, 101) is None
        assert flags(app.guest_table, "101") == ""
    assert journal_actions(store) == [
        ("user", "pin", "guest/101"),
        ("user", "lock", "guest/101"),
        ("user", "unpin", "guest/101"),
        ("user", "unlock", "guest/101"),
    ]


async def test_choose_the_allowed_nodes_in_the_multi_select(source, store):
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await open_guest(pilot, 103)  # runs on small1
        await pilot.press("a")
        dialog = app.screen
        assert isinstance(dialog, NodeSetDialog)
        assert dialog.query_one(SelectionList).selected == ["small1"]  # its node, preselected
        await pilot.press("space")  # the highlight starts on "big": select it too
        await pilot.press("enter")
        await settle(pilot)
        assert store.pin(C, 103).nodes == {"big", "small1"}
        assert "big, small1" in panel_text(app.screen, "guest-rules")
        await pilot.press("a")
        await pilot.press("escape")  # cancel changes nothing
        assert store.pin(C, 103).nodes == {"big", "small1"}
        await pilot.press("a")
        selection = app.screen.query_one(SelectionList)
        selection.deselect_all()
        await pilot.press("enter")  # nothing selected: unpin
        await settle(pilot)
        assert store.pin(C, 103) is None
        await pilot.press("escape")
        assert flags(app.guest_table, "103") == ""
    assert [a for _, a, _ in journal_actions(store)] == ["pin", "unpin"]


async def test_reserve_and_power_settings_from_the_node_pane(source, store):
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        screen = await open_node(pilot, "big")
        await settle(pilot)
        text = panel_text(screen, "node-rules")
        assert "aa:bb:cc:dd:ee:ff (from the PVE node config" in text and "power-off       never" in text
        await pilot.press("v")
        assert [r.node for r in store.reservations(C)] == ["big"]
        await pilot.press("w")
        dialog = app.screen
        assert isinstance(dialog, PowerSettingsDialog)
        assert dialog.query_one("#mac", Input).value == "aa:bb:cc:dd:ee:ff"  # prefilled from wakeonlan
        assert dialog.query_one("#allow", Checkbox).value is False
        dialog.query_one("#allow", Checkbox).value = True
        dialog.query_one("#timeout", Input).value = "600"
        await pilot.press("ctrl+s")
        await settle(pilot)
        power = store.node_power(C, "big")
        assert (power.wol_mac, power.allow_power_off, power.boot_timeout) == ("aa:bb:cc:dd:ee:ff", True, 600)
        text = panel_text(app.screen, "node-rules")
        assert "reserved        yes" in text and "power-off       allowed" in text and "600 s" in text
        await pilot.press("escape")
        assert flags(app.node_table, "big") == "R"
        await open_node(pilot, "big")
        await pilot.press("v")
        await pilot.press("escape")
        assert flags(app.node_table, "big") == "" and store.reservations(C) == []
    assert [a for _, a, _ in journal_actions(store)] == ["reserve", "node_power.set", "unreserve"]


async def test_a_bad_mac_keeps_the_form_open_with_the_reason(source, store):
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await open_node(pilot, "small1")
        await pilot.press("w")
        dialog = app.screen
        assert dialog.query_one("#mac", Input).value == ""  # no wakeonlan in its config
        dialog.query_one("#mac", Input).value = "not-a-mac"
        await pilot.press("ctrl+s")
        assert app.screen is dialog
        assert "not a MAC address" in str(dialog.query_one("#error", Static).render())
        await pilot.press("escape")
    assert store.node_power_settings(C) == [] and store.recent_journal(C) == []


async def test_rules_changed_elsewhere_show_on_the_next_refresh(source, store):
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        store.lock_guest(C, 104, "backup")  # e.g. `pvetop locks add 104` in another shell
        store.set_maintenance(C, "small1")
        source.snapshot = advanced(source.snapshot, 2)  # the next poll, 2 s later
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert flags(app.guest_table, "104") == "L" and flags(app.node_table, "small1") == "M"


async def test_journal_view_lists_recent_entries(source, store):
    store.pin_guest(C, 100, "web-1", ["big"])
    store.journal(
        C,
        "balancer",
        "migrate",
        "guest/101",
        {"target": "small1"},
        result="OK",
        upid="UPID:big:00001234:00005678:65000000:qmigrate:101:root@pam:",
    )
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await open_journal(pilot)
        table = app.screen.query_one(JournalTable)
        rows = [[table.cell_text(key, column) for column in ("actor", "action", "target", "details")]
                for key in table.keys_in_order]  # fmt: skip
        assert [row[:3] for row in rows] == [["balancer", "migrate", "guest/101"], ["user", "pin", "guest/100"]]
        assert "qmigrate" in rows[0][3]
        await pilot.press("escape")
        assert not isinstance(app.screen, JournalScreen)


async def test_rules_keys_are_in_help_and_the_command_palette(source, store):
    """`?` lists every binding, the ones the rules store adds at run time included."""
    from pvetop.ui.help import HelpScreen

    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text", Static).render())
        for key, description in (("j", "Journal"), ("c", "Reconcile"), ("i", "Pin hints")):
            assert f"  {key:<18}{description}" in text
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"journal")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JournalScreen)


async def test_reconcile_shows_the_changes_and_applies_only_after_confirmation(source, store):
    store.pin_guest(C, 150, "gone-guest", ["big"])
    store.lock_guest(C, 100, "mail")  # vmid 100 is now "web-1": a reused vmid
    store.reserve_node(C, "retired")
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("c")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ReconcileDialog)
        labels = [str(dialog.query_one(SelectionList).get_option_at_index(i).prompt) for i in range(3)]
        assert any("guest 150 (gone-guest) no longer exists" in label for label in labels)
        assert any("now belongs to 'web-1', not 'mail'" in label for label in labels)
        assert any("node retired is no longer in the cluster" in label for label in labels)
        await pilot.press("escape")  # closing without applying changes nothing
        assert store.pin(C, 150) is not None and store.lock(C, 100) is not None
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("space")  # untick the first proposal (the pin): it must stay
        await pilot.press("a")
        await settle(pilot)
        assert store.pin(C, 150) is not None
        assert store.lock(C, 100) is None and store.reservations(C) == []
        assert flags(app.guest_table, "100") == ""
    assert sorted(a for _, a, _ in journal_actions(store) if a.startswith("reconcile")) == ["reconcile.remove"] * 2


async def test_pin_suggestions_from_tags_are_offered_and_accepted(source, store):
    from dataclasses import replace

    snapshot = source.snapshot
    source.snapshot = replace(
        snapshot,
        guests=tuple(replace(g, tags=g.tags + ("plb_pin_small1",)) if g.vmid == 103 else g for g in snapshot.guests),
    )
    app = make_app(source, store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await pilot.press("i")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SuggestionsDialog)
        assert dialog.query_one(SelectionList).selected == []  # nothing is pinned unless chosen
        await pilot.press("space", "a")
        await settle(pilot)
        assert store.pin(C, 103).nodes == {"small1"} and store.pin(C, 103).note == "from proxlb-tag"
        assert flags(app.guest_table, "103") == "P"


async def test_read_only_refuses_every_rule_change(source, store):
    app = make_app(source, store, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        await open_guest(pilot, 101)
        await pilot.press("o", "l", "a")
        assert not isinstance(app.screen, NodeSetDialog)
        await pilot.press("escape")
        await open_node(pilot, "big")
        await pilot.press("v", "w")
        assert isinstance(app.screen, NodeDetailScreen)
    assert store.pins(C) == [] and store.recent_journal(C) == []


async def test_against_the_simulator_pin_and_power_settings_use_the_real_client(tmp_path):
    """The whole path: PveClient talking to the simulated cluster, the store, the tables and the journal."""
    from pvetop.config import settings_from_sim_info
    from pvetop.pve import PveClient
    from pvetop.sim.runner import start_sim

    with (
        start_sim(scenario="homelab", seed=1, manual_clock=True) as sim,
        PveClient.connect(settings_from_sim_info(sim.info)) as client,
        open_store(str(tmp_path / "sim.sqlite")) as store,
    ):
        app = make_app(client, store)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_data(pilot)
            await open_guest(pilot, 104)  # jellyfin on pve-mini1
            await pilot.press("o")
            await pilot.press("escape")
            assert flags(app.guest_table, "104") == "P"
            screen = await open_node(pilot, "pve-big")
            for _ in range(50):  # the node config arrives from a worker thread
                await settle(pilot)
                if "from the PVE node config" in panel_text(screen, "node-rules"):
                    break
            await pilot.press("w")
            dialog = app.screen
            pve_mac = client.node_config("pve-big")["wakeonlan"].split("=", 1)[1].split(",")[0].lower()
            assert dialog.query_one("#mac", Input).value == pve_mac
            await pilot.press("ctrl+s")
            await settle(pilot)
        assert store.pin("homelab", 104).nodes == {"pve-mini1"} and store.pin("homelab", 104).who == "root@pam"
        assert store.node_power("homelab", "pve-big").wol_mac == pve_mac
        assert [e.action for e in reversed(store.recent_journal("homelab"))] == ["pin", "node_power.set"]


async def test_the_guest_pane_is_composed_once_and_moves_on_with_its_panels(source, store, monkeypatch):
    """Enter composes the guest pane once (composing it was the dashboard's slowest key) and then
    points it at the next guest: title, fields, config and the rules panel are that guest's; a
    history read for the guest shown before, arriving late, is dropped; put away, the pane reads
    no history and its panels follow no refresh."""
    monkeypatch.setattr(detail, "HISTORY_SECONDS", 0.05)
    history_reads: list[int] = []
    read_history = source.guest_rrddata
    source.guest_rrddata = lambda guest, timeframe="hour": history_reads.append(guest.vmid) or read_history(guest)
    store.lock_guest(C, 101, "web-2")
    app = make_app(source, store, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        first = await open_guest(pilot, 100)
        assert "locked     no" in panel_text(first, "guest-rules")
        assert "scsi0" in panel_text(first, "config")
        await pilot.press("escape")
        second = await open_guest(pilot, 101)
        assert second is first
        assert "web-2" in panel_text(second, "detail-title") and "web-2" in panel_text(second, "fields")
        assert "locked     yes" in panel_text(second, "guest-rules")
        assert "no config" in panel_text(second, "config")
        second.post_message(detail.HistoryLoaded(100, [], [("late", "from guest 100")]))
        await settle(pilot)
        assert "late" not in panel_text(second, "config")
        assert history_reads and set(history_reads[-2:]) == {101}
        await pilot.press("escape")
        await settle(pilot)
        panel_reads: list[int] = []
        read_lock = store.lock
        store.lock = lambda cluster, vmid: panel_reads.append(vmid) or read_lock(cluster, vmid)
        reads_when_closed = len(history_reads)
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)  # six history periods
        await settle(pilot)
        assert len(history_reads) == reads_when_closed and panel_reads == []
