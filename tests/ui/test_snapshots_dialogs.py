"""SVG snapshots of the dialogs and the panes opened from the dashboard, on the fixed in-memory
cluster and the frozen clock of ``test_snapshots.py`` (no wall-clock time reaches a screen).

The dialogs that read Proxmox VE when they open (migrate preconditions) get a canned empty
answer; jobs shown in the tasks pane are built with fixed times. Regenerate after an intended
change with ``pytest tests/ui/test_snapshots_dialogs.py --snapshot-update`` and look at the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.widgets import Input

from pvetop.engine.migrations import JobState, MigrationJob, MoveOptions
from pvetop.errors import ApiError
from pvetop.policy.placement import planned_move
from pvetop.pve import actions
from pvetop.store import open_store
from pvetop.ui.migrate.bulk import BulkMigrateScreen
from pvetop.ui.migrate.dialog import MigrateScreen, PreconditionArrived
from pvetop.ui.migrate.evacuate import EvacuateScreen
from pvetop.ui.rules import install_rules
from pvetop.ui.rules.dialogs import PowerForm, PowerSettingsDialog
from tests.ui.fixtures import FIXED_NOW, fixed_clock
from tests.ui.pilot import settle
from tests.ui.test_snapshots import dashboard

Step = Callable[[object], Awaitable[None]]


def then(setup: dict, step: Step) -> dict:
    """The dashboard's setup, then ``step(pilot)`` and everything it started, settled."""
    before = setup["run_before"]

    async def run_before(pilot) -> None:
        await before(pilot)
        await step(pilot)
        await settle(pilot)
        await pilot.pause(0.1)
        await settle(pilot)

    return {**setup, "run_before": run_before}


def migrate_answers(path: str, **params):
    """``GET nodes/{node}/{type}/{vmid}/migrate`` (the in-memory source has no API): the other
    online node allowed, no local disks or resources."""
    if not path.endswith("/migrate"):
        raise ApiError(501, f"no canned answer for {path}")
    node = path.split("/")[1]
    allowed = [other for other in ("big", "small1") if other != node]
    return {"allowed_nodes": allowed, "not_allowed_nodes": {}, "local_disks": [], "local_resources": []}


def with_api() -> dict:
    setup = dashboard()
    setup["app"].source.get = migrate_answers
    return setup


def job(app, vmid: int, target: str, state: JobState, job_id: int, error: str | None = None) -> MigrationJob:
    guest = app.latest.snapshot.guest_by_vmid[vmid]
    move = planned_move(guest, guest.node, target, "migrate dialog")
    made = MigrationJob(id=job_id, move=move, options=MoveOptions(), actor="user", queued_at=FIXED_NOW)
    made.state = state
    made.started_at = FIXED_NOW - 95
    made.finished_at = None if state is JobState.RUNNING else FIXED_NOW - 20
    made.error = error
    return made


def with_jobs(setup: dict) -> dict:
    """A finished and a refused migration of ours (the in-memory source lists no cluster tasks)."""

    async def add(pilot) -> None:
        app = pilot.app
        app.migrations.jobs.extend(
            [
                job(app, 101, "small1", JobState.SUCCEEDED, 1),
                job(app, 103, "big", JobState.FAILED, 2, error="storage 'local-zfs' is not available on node 'big'"),
            ]
        )

    return then(setup, add)


def test_migrate_dialog(snap_compare):
    """``m`` on an HA guest; PVE's precondition as a live client would fetch it."""

    async def open_it(pilot) -> None:
        app = pilot.app
        dialog = MigrateScreen(100)
        await app.push_screen(dialog)
        guest = app.latest.snapshot.guest_by_vmid[100]
        dialog.post_message(PreconditionArrived(actions.migrate_precondition(app.source, guest)))

    assert snap_compare(**then(with_api(), open_it))


def test_bulk_move_dialog(snap_compare):
    async def open_it(pilot) -> None:
        pilot.app.tagged.update({100, 101, 104})
        await pilot.app.push_screen(BulkMigrateScreen([100, 101, 104]))

    assert snap_compare(**then(with_api(), open_it))


def test_evacuate_dialog(snap_compare):
    async def open_it(pilot) -> None:
        await pilot.app.push_screen(EvacuateScreen("big"))

    assert snap_compare(**then(with_api(), open_it))


def test_tasks_pane(snap_compare):
    async def open_it(pilot) -> None:
        await pilot.press("t")

    assert snap_compare(**then(with_jobs(dashboard()), open_it))


def test_task_log(snap_compare):
    async def open_it(pilot) -> None:
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("enter")  # the refused job: no task, its error

    assert snap_compare(**then(with_jobs(dashboard()), open_it))


def test_lifecycle_confirm(snap_compare):
    """``x``, Stop hard: the question asked before a hard stop."""

    async def open_it(pilot) -> None:
        app = pilot.app
        app.migrations_ui._power_chosen([app.latest.snapshot.guest_by_vmid[100]], ("stop", 60))

    assert snap_compare(**then(dashboard(), open_it))


def test_power_settings_form(snap_compare):
    async def open_it(pilot) -> None:
        form = PowerForm("aa:bb:cc:dd:ee:ff", True, 300)
        dialog = PowerSettingsDialog("big", form, "MAC from the node's config (wakeonlan)")
        await pilot.app.push_screen(dialog)
        for field in dialog.query(Input):
            field.cursor_blink = False  # the focused field's cursor would be caught on or off

    assert snap_compare(**then(dashboard(), open_it))


def test_stale_data_header(snap_compare):
    """A poll failed after the first data: the header says since when, why, and when it retries."""

    async def fail(pilot) -> None:
        pilot.app.source.fail_with = ApiError(595, "Connection refused (big:8006)")
        await pilot.press("ctrl+r")

    assert snap_compare(**then(dashboard(), fail))


def with_rules(tmp_path) -> dict:
    store = open_store(str(tmp_path / "rules.sqlite"), clock=fixed_clock)
    store.pin_guest("homelab", 100, "web-1", {"big", "small1"}, who="admin@pam")
    store.lock_guest("homelab", 101, "web-2", who="admin@pam")
    store.reserve_node("homelab", "small1", who="admin@pam")
    store.journal("homelab", "balancer", "migrate", "guest/104", {"target": "big"}, result="failed: storage not on big")
    setup = dashboard()
    install_rules(setup["app"], store)
    return setup


def test_guest_rules_panel(snap_compare, tmp_path):
    async def open_it(pilot) -> None:
        await pilot.press("enter")  # guest 100: pinned to two nodes

    assert snap_compare(**then(with_rules(tmp_path), open_it))


def test_node_rules_panel(snap_compare, tmp_path):
    async def open_it(pilot) -> None:
        await pilot.press("shift+tab", "down", "enter")  # small1: reserved

    assert snap_compare(**then(with_rules(tmp_path), open_it))


def test_journal(snap_compare, tmp_path):
    async def open_it(pilot) -> None:
        await pilot.press("j")

    assert snap_compare(**then(with_rules(tmp_path), open_it))
