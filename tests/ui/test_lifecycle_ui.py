"""``x``: start, shut down, reboot and stop guests from the dashboard, against the simulator."""

from __future__ import annotations

from pvetop.ui.lifecycle import PowerScreen
from pvetop.ui.migrate.confirm import ConfirmScreen
from pvetop.ui.migrate.tasks import TasksScreen
from tests.ui.migrate_pilot import drive, guest_cell, screen_text, select_row, sim_pilot, wait_until


async def choose(pilot, vmid: int | None, action_index: int) -> None:
    app = pilot.app
    if vmid is not None:
        select_row(app.guest_table, str(vmid))
    await pilot.press("x")
    await wait_until(pilot, lambda: isinstance(app.screen, PowerScreen))
    app.screen.query_one("#power-actions").highlighted = action_index
    await pilot.press("enter")


def settled(app, vmid: int) -> bool:
    """The guest's power job has read its task's end: the table (from the cluster resources poll) can
    show the new state a poll before the job (from the task's status) finishes, so both are awaited."""
    return app.lifecycle.job_for(vmid) is None


async def test_shutdown_then_start_a_guest_with_progress_in_the_tasks_pane():
    async with sim_pilot() as (sim, app, pilot):
        await choose(pilot, 103, 1)  # shut down
        await wait_until(pilot, lambda: bool(app.lifecycle.jobs))
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, TasksScreen))
        seen: set[str] = set()

        def stopped() -> bool:
            seen.update(line for line in screen_text(app).splitlines() if "qmshutdown" in line)
            return guest_cell(app, 103, "status") == "stopped" and settled(app, 103)

        await drive(pilot, sim, stopped, step=1.0)
        assert any("shutdown:" in line for line in seen), seen
        await pilot.press("escape")
        await choose(pilot, 103, 0)  # start
        await drive(pilot, sim, lambda: guest_cell(app, 103, "status") == "running" and settled(app, 103), step=1.0)
        assert [job.status_text for job in app.lifecycle.jobs] == ["shut down", "started"]


async def test_tagged_ha_guest_stops_hard_only_after_confirming():
    async with sim_pilot() as (sim, app, pilot):
        select_row(app.guest_table, "100")
        await pilot.press("space")
        await choose(pilot, None, 3)  # stop hard
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert not app.lifecycle.jobs
        await choose(pilot, None, 3)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await drive(
            pilot,
            sim,
            lambda: (
                (guest_cell(app, 100, "status"), guest_cell(app, 100, "ha")) == ("stopped", "stopped")
                and settled(app, 100)
            ),
        )
        job = app.lifecycle.jobs[0]
        assert job.via_ha and job.action == "stop" and job.status_text == "stopped via HA manager"


async def test_power_is_refused_read_only():
    async with sim_pilot(read_only=True) as (sim, app, pilot):
        select_row(app.guest_table, "103")
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, PowerScreen)
