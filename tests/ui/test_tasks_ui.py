"""The tasks pane: ours and the cluster's tasks, progress, the full log, stopping a task."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Log

from pvetop.policy.placement import planned_move
from pvetop.pve import actions
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.tasks import TaskLogScreen, TasksScreen
from tests.engine.simdrive import connect, guest_node
from tests.ui.migrate_pilot import drive, screen_text, select_row, sim_pilot, wait_until


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(TasksScreen, "POLL", 0.2)
    monkeypatch.setattr(TaskLogScreen, "POLL", 0.2)


def start_elsewhere(sim, vmid: int, target: str) -> str:
    """A migration started by someone else (another client), not by this dashboard."""
    with connect(sim) as other:
        guest = other.fetch_snapshot().guest_by_vmid[vmid]
        return actions.migrate(other, guest, target)


def task_row(app, upid: str) -> list[str]:
    table = app.screen.query_one("#tasks", DataTable)
    return [str(cell) for cell in table.get_row(upid)]


async def open_tasks(pilot) -> TasksScreen:
    await pilot.press("t")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TasksScreen))
    return pilot.app.screen


async def tasks_with_theirs(pilot, sim) -> tuple[TasksScreen, str]:
    """The tasks pane open on a migration someone else started (VM 103 to pve-big), once it is listed."""
    theirs = start_elsewhere(sim, 103, "pve-big")
    screen = await open_tasks(pilot)
    await wait_until(pilot, lambda: theirs in screen.rows)
    return screen, theirs


async def test_pane_shows_ours_and_the_clusters_tasks_with_progress():
    async with sim_pilot() as (sim, app, pilot):
        theirs = start_elsewhere(sim, 103, "pve-big")
        job = app.migrations.submit(
            planned_move(app.latest.snapshot.guest_by_vmid[102], "pve-mini1", "pve-mini2", "test")
        )
        screen = await open_tasks(pilot)
        await wait_until(pilot, lambda: job.upid in screen.rows and theirs in screen.rows)
        await wait_until(pilot, lambda: "2 running" in screen_text(app))  # simulated time stands still
        assert task_row(app, theirs)[2:4] == ["qmigrate", "103"]
        assert task_row(app, job.upid)[6].startswith("pve-mini1 → pve-mini2: ")

        sim.cluster.step(12)  # 103 is copying its memory now
        await wait_until(pilot, lambda: "% (" in task_row(app, theirs)[6])

        await drive(pilot, sim, lambda: not screen.rows[theirs].running and not screen.rows[job.upid].running)
        assert task_row(app, theirs)[6] == "OK" and task_row(app, theirs)[5] != "-"
        assert task_row(app, job.upid)[6].endswith(": done")


async def test_enter_opens_the_full_log_of_a_task():
    async with sim_pilot() as (sim, app, pilot):
        screen, theirs = await tasks_with_theirs(pilot, sim)
        select_row(screen.query_one("#tasks", DataTable), theirs)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskLogScreen))
        log = app.screen.query_one(Log)
        await drive(pilot, sim, lambda: any("TASK OK" in line for line in log.lines), step=4.0)
        text = "\n".join(log.lines)
        assert "starting migration of VM 103 to node 'pve-big'" in text and "migration active, transferred" in text
        await pilot.press("escape")
        assert app.screen is screen


async def test_stopping_a_running_task_asks_first_and_the_guest_stays():
    async with sim_pilot() as (sim, app, pilot):
        screen, theirs = await tasks_with_theirs(pilot, sim)
        select_row(screen.query_one("#tasks", DataTable), theirs)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "The migration is aborted and the guest stays on its node." in screen_text(app)
        await pilot.press("n")  # declining changes nothing
        await wait_until(pilot, lambda: app.screen is screen)
        assert screen.rows[theirs].running

        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: theirs in screen.rows and not screen.rows[theirs].running)
        assert task_row(app, theirs)[6] == "migration aborted"
        assert guest_node(sim, 103) == "pve-mini1"


async def test_stopping_our_own_job_goes_through_the_executor():
    async with sim_pilot() as (sim, app, pilot):
        job = app.migrations.submit(
            planned_move(app.latest.snapshot.guest_by_vmid[103], "pve-mini1", "pve-big", "test")
        )
        screen = await open_tasks(pilot)
        await wait_until(pilot, lambda: job.upid in screen.rows)
        select_row(screen.query_one("#tasks", DataTable), job.upid)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: job.state.finished)
        assert "interrupted by signal" in job.error
        assert "failed: " in task_row(app, job.upid)[6]


async def test_read_only_greys_out_stopping():
    async with sim_pilot(read_only=True) as (sim, app, pilot):
        screen, theirs = await tasks_with_theirs(pilot, sim)
        assert screen.check_action("stop", ()) is None and screen.check_action("open_log", ()) is True
        select_row(screen.query_one("#tasks", DataTable), theirs)
        await pilot.press("s")
        await pilot.pause()
        assert app.screen is screen and screen.rows[theirs].running
