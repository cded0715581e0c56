"""More rough edges of issue 12 (the numbers in the test names)."""

from __future__ import annotations

from pvetop.engine.migrations import JobState, MigrationJob, MoveOptions
from pvetop.policy.placement import planned_move
from pvetop.ui.migrate.confirm import ConfirmScreen
from tests.ui.pilot import settle, wait_for_data

SIZE = (160, 40)


def a_job(app, state: JobState) -> MigrationJob:
    guest = app.latest.snapshot.guest_by_vmid[101]
    move = planned_move(guest, guest.node, "small1", "test")
    return MigrationJob(id=7, move=move, options=MoveOptions(), actor="user", queued_at=0.0, state=state)


async def test_edge_07_a_failed_migration_is_announced_once(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        announce = app.migrations.on_update  # what the executor calls after every change of a job
        assert announce is not None
        job = a_job(app, JobState.FAILED)
        job.error = "stopped by the user"
        announce(job)  # a late update of the same finished job ...
        announce(job)  # ... and its final one
        await settle(pilot)
        failed = [n for n in app._notifications if n.title == "Migration failed"]
        assert len(failed) == 1


async def test_edge_20_the_demo_quit_question_says_its_cluster_stops(app):
    app.embedded_cluster = True
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        app.migrations.jobs.append(a_job(app, JobState.RUNNING))
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "The demo cluster stops with pvetop" in app.screen.question
        assert "go on in the cluster" not in app.screen.question
        await pilot.press("escape")
        app.migrations.jobs.clear()


async def test_edge_24_every_dialog_confirms_with_enter_and_cancels_with_escape(app):
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_data(pilot)
        answers: list[bool | None] = []
        app.push_screen(ConfirmScreen("Go?"), answers.append)
        await settle(pilot)
        await pilot.press("enter")
        app.push_screen(ConfirmScreen("Go?"), answers.append)
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert answers == [True, False]
