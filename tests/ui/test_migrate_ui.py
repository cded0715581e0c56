"""The migrate, bulk-migrate and evacuate dialogs driven by keys against the simulator."""

from __future__ import annotations

from textual.widgets import Checkbox, DataTable, Input, Static

from pvetop.engine.migrations import Limits
from pvetop.policy.placement import planned_move
from pvetop.policy.rules import RuleSet
from pvetop.store import open_store
from pvetop.ui.migrate.bulk import BulkMigrateScreen
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.dialog import MigrateScreen
from pvetop.ui.migrate.evacuate import EvacuateScreen
from tests.engine.simdrive import guest_node, max_overlap, migration_tasks, set_failure_rate
from tests.ui.migrate_pilot import (
    drive,
    guest_cell,
    open_evacuation,
    screen_text,
    select_row,
    sim_pilot,
    wait_until,
)
from tests.ui.pilot import wait_for_data


def jobs_done(app) -> bool:
    return bool(app.migrations.jobs) and not app.migrations.busy


def text_of(widget: Static) -> str:
    return str(widget.render())


async def open_dialog(pilot, vmid: int) -> MigrateScreen:
    app = pilot.app
    select_row(app.guest_table, str(vmid))
    await pilot.press("m")
    await wait_until(pilot, lambda: isinstance(app.screen, MigrateScreen))
    dialog = app.screen
    await wait_until(pilot, lambda: "checking" not in text_of(dialog.query_one("#notes", Static)))
    return dialog


async def migrate_to(pilot, dialog: MigrateScreen, target: str) -> None:
    select_row(dialog.query_one("#candidates", DataTable), target)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
    await pilot.press("y")


async def test_online_migration_shows_progress_and_the_new_node():
    async with sim_pilot() as (sim, app, pilot):
        dialog = await open_dialog(pilot, 103)
        table = dialog.query_one("#candidates", DataTable)
        assert {str(table.get_row_at(i)[0]) for i in range(table.row_count)} == {"pve-mini2", "pve-big"}
        assert [str(c.label) for c in table.columns.values()][2:6] == ["CPU now", "→ after", "Memory now", "→ after"]
        await migrate_to(pilot, dialog, "pve-big")
        await wait_until(pilot, lambda: not isinstance(app.screen, MigrateScreen))

        await pilot.press("t")
        progress_seen = set()

        def done() -> bool:
            progress_seen.update(line for line in screen_text(app).splitlines() if "% (" in line)
            return guest_cell(app, 103, "node") == "pve-big"

        await drive(pilot, sim, done)
        assert progress_seen, "the tasks pane never showed progress"
        assert guest_node(sim, 103) == "pve-big"


async def test_local_disk_vm_shows_the_requirement_and_moves_with_local_disks():
    async with sim_pilot() as (sim, app, pilot):
        dialog = await open_dialog(pilot, 104)
        assert "Local disks (local-lvm:vm-104-disk-0)" in text_of(dialog.query_one("#notes", Static))
        local_disks = dialog.query_one("#local-disks", Checkbox)
        assert local_disks.value

        local_disks.value = False  # a live move without copying the disks is refused before asking PVE
        select_row(dialog.query_one("#candidates", DataTable), "pve-big")
        await pilot.press("enter")
        await pilot.pause()
        assert "needs “With local disks”" in text_of(dialog.query_one("#error", Static))
        assert app.screen is dialog

        local_disks.value = True
        await migrate_to(pilot, dialog, "pve-big")
        await drive(pilot, sim, lambda: guest_cell(app, 104, "node") == "pve-big" and jobs_done(app))
        job = app.migrations.jobs[0]
        assert job.succeeded and job.move.with_local_disks


async def test_container_migrates_by_restart_with_its_timeout():
    async with sim_pilot() as (sim, app, pilot):
        dialog = await open_dialog(pilot, 102)
        assert dialog.query_one("#restart", Checkbox).value
        dialog.query_one("#timeout", Input).value = "30"
        await migrate_to(pilot, dialog, "pve-mini2")
        await drive(pilot, sim, lambda: guest_cell(app, 102, "node") == "pve-mini2" and jobs_done(app))
        job = app.migrations.jobs[0]
        assert job.move.restart and job.options.restart_timeout == 30 and job.succeeded


async def test_ha_guest_is_shown_and_moved_via_the_ha_manager():
    async with sim_pilot() as (sim, app, pilot):
        dialog = await open_dialog(pilot, 100)
        assert "HA manager" in text_of(dialog.query_one("#notes", Static))
        await migrate_to(pilot, dialog, "pve-big")
        await drive(pilot, sim, lambda: guest_cell(app, 100, "node") == "pve-big")
        assert app.migrations.jobs[0].via_ha


async def test_api_refusal_shows_in_the_dialog_and_the_app_goes_on():
    async with sim_pilot() as (sim, app, pilot):
        dialog = await open_dialog(pilot, 103)
        with sim.cluster.lock:  # a backup starts while the dialog is open
            sim.cluster.guests[103].lock = "backup"
        await migrate_to(pilot, dialog, "pve-big")
        error = dialog.query_one("#error", Static)
        await wait_until(pilot, lambda: "refused" in text_of(error))
        assert app.screen is dialog and "VM is locked (backup)" in text_of(error)

        with sim.cluster.lock:
            sim.cluster.guests[103].lock = None
        await migrate_to(pilot, dialog, "pve-big")  # the same dialog tries again
        await drive(pilot, sim, lambda: guest_cell(app, 103, "node") == "pve-big")


async def test_pin_is_a_warning_not_a_block():
    async with sim_pilot(ruleset=RuleSet(pins={103: {"pve-mini1"}})) as (sim, app, pilot):
        dialog = await open_dialog(pilot, 103)
        table = dialog.query_one("#candidates", DataTable)
        row = [str(cell) for cell in table.get_row("pve-big")]
        assert row[1] == "warn" and "pinned to pve-mini1" in row[-1]
        select_row(table, "pve-big")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "pins and locks bind only automation" in screen_text(app)


async def test_injected_failure_shows_its_log_line_and_the_guest_stays():
    async with sim_pilot(failure_rate=1.0) as (sim, app, pilot):
        dialog = await open_dialog(pilot, 103)
        await migrate_to(pilot, dialog, "pve-big")
        await drive(pilot, sim, lambda: jobs_done(app))
        job = app.migrations.jobs[0]
        assert "ERROR: online migrate failure" in job.error
        await pilot.press("t")
        await wait_until(pilot, lambda: "ERROR: online migrate failure" in screen_text(app))
        await pilot.press("escape")
        await wait_until(pilot, lambda: guest_cell(app, 103, "lock") == "")
        assert guest_cell(app, 103, "node") == "pve-mini1"

        set_failure_rate(sim, 0.0)  # the app goes on working
        dialog = await open_dialog(pilot, 103)
        await migrate_to(pilot, dialog, "pve-big")
        await drive(pilot, sim, lambda: guest_cell(app, 103, "node") == "pve-big")


async def test_bulk_move_of_tagged_guests_with_a_preview():
    async with sim_pilot() as (sim, app, pilot):
        for vmid in (105, 106, 110):
            select_row(app.guest_table, str(vmid))
            await pilot.press("space")
        assert app.tagged == {105, 106, 110}
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, BulkMigrateScreen))
        select_row(app.screen.query_one("#targets", DataTable), "pve-big")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "3 move(s) to pve-big" in screen_text(app)
        await pilot.press("y")
        await drive(pilot, sim, lambda: all(guest_cell(app, v, "node") == "pve-big" for v in (105, 106, 110)))
        assert app.tagged == set()


async def test_evacuation_moves_every_guest_within_limits_and_marks_maintenance(tmp_path):
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        store.reserve_node("homelab", "pve-mini2")
        async with sim_pilot(store=store, ruleset=store.ruleset("homelab")) as (sim, app, pilot):
            # vm:100's HA rule prefers the minis: PVE's CRM would pull it back onto pve-mini1 or on to
            # pve-mini2 while the evacuation watches, depending on their load at that instant (that
            # fight is tested in tests/engine/test_evacuation_crashes.py); here it is lifted, so the
            # test sees the evacuation's own moves and limits, the same on every run
            with sim.cluster.lock:
                sim.cluster.ha_rules = [rule for rule in sim.cluster.ha_rules if rule.rule != "ha-on-minis"]
            screen = await open_evacuation(pilot, "pve-mini1")
            assert "evacuate pve-mini1: 7 move(s)" in screen_text(app)
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await drive(pilot, sim, lambda: screen.result is not None)
            assert screen.result.complete
            assert app.migrations.limits == Limits()
            record = migration_tasks(sim)
            assert len(record) == 7 and max_overlap(record) == 2
            assert all(task.node == "pve-mini1" and guest_node(sim, int(task.id)) == "pve-big" for task in record)
            assert [m.node for m in store.maintenance("homelab")] == ["pve-mini1"]
            assert "pve-mini1" in app.ruleset.maintenance
            assert "7 of 7 moves done" in screen_text(app)


async def test_read_only_greys_out_and_refuses_the_keys():
    async with sim_pilot(read_only=True) as (sim, app, pilot):
        for action in ("migrate", "evacuate", "tag"):
            assert app.check_action(action, ()) is None
        assert app.check_action("tasks", ()) is True
        select_row(app.guest_table, "103")
        for key in ("space", "m", "e"):
            await pilot.press(key)
        await pilot.pause()
        assert app.screen is app.screen_stack[0] and app.tagged == set()


async def test_palette_offers_the_actions_and_a_fixed_snapshot_cannot_migrate(app):
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_data(pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Migrate the selected guest", "Tag / untag the selected guest", "Evacuate a node", "Tasks"} <= titles
        await pilot.press("m")
        await pilot.pause()
        await wait_until(pilot, lambda: [n.message for n in app._notifications] == ["this data source cannot migrate"])
        assert app.screen is app.screen_stack[0]


async def test_a_bad_limit_setting_falls_back_to_the_defaults(tmp_path):
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        store.set_setting("homelab", "migrations.max_parallel", "lots")
        async with sim_pilot(store=store) as (sim, app, pilot):
            assert app.migrations.limits == Limits()
            await wait_until(
                pilot, lambda: any("max_parallel must be a whole number" in n.message for n in app._notifications)
            )


async def test_evacuation_asks_about_a_pinned_guest_and_space_moves_it_anyway():
    async with sim_pilot(ruleset=RuleSet(pins={105: {"pve-mini1"}})) as (sim, app, pilot):
        select_row(app.guest_table, "105")
        await pilot.press("e")  # from the guest table: the node of the selected guest
        await wait_until(pilot, lambda: isinstance(app.screen, EvacuateScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.proposal is not None)
        assert screen.node == "pve-mini1"
        table = screen.query_one("#plan", DataTable)
        assert "pinned to pve-mini1 — space: move anyway" in str(table.get_row("held:105")[-1])
        select_row(table, "held:105")
        await pilot.press("space")
        assert 105 in {move.vmid for move in screen.proposal.plan.moves} and screen.proposal.plan.complete
        assert "moved anyway: pin/lock lifted" in str(table.get_row("move:105")[-1])
        select_row(table, "move:105")
        await pilot.press("space")  # and back: it stays
        assert [item.vmid for item in screen.proposal.plan.needs_decision] == [105]
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0] and sim.cluster.tasks == []


async def test_ha_vm_with_local_disks_is_explained_not_started():
    async with sim_pilot() as (sim, app, pilot):
        with sim.cluster.lock:
            sim.cluster.guests[100].disks[0].storage = "local-lvm"
        dialog = await open_dialog(pilot, 100)
        select_row(dialog.query_one("#candidates", DataTable), "pve-big")
        await pilot.press("enter")
        await pilot.pause()
        assert "PVE's HA manager does not copy local disks" in text_of(dialog.query_one("#error", Static))
        assert app.screen is dialog and app.migrations.jobs == []


async def test_keys_work_from_the_detail_panes():
    from pvetop.ui.detail import GuestDetailScreen, NodeDetailScreen

    async with sim_pilot() as (sim, app, pilot):
        app.push_screen(GuestDetailScreen(104))
        await wait_until(pilot, lambda: isinstance(app.screen, GuestDetailScreen))
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrateScreen))
        assert app.screen.vmid == 104
        await pilot.press("escape")
        app.pop_screen()
        app.push_screen(NodeDetailScreen("pve-big"))
        await wait_until(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EvacuateScreen))
        assert app.screen.node == "pve-big"


async def test_quitting_with_migrations_under_way_asks_first():
    async with sim_pilot() as (sim, app, pilot):
        snapshot = app.latest.snapshot
        app.migrations.submit(planned_move(snapshot.guest_by_vmid[103], "pve-mini1", "pve-big", "test"))
        app.migrations.submit(planned_move(snapshot.guest_by_vmid[105], "pve-mini1", "pve-big", "test"))
        app.migrations.submit(planned_move(snapshot.guest_by_vmid[106], "pve-mini1", "pve-big", "test"))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "2 migration(s) running, 1 queued" in screen_text(app)  # max_parallel 2
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is app.screen_stack[0])
        assert app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)
