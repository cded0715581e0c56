"""What a daemon left running for months keeps: no record grows with every move or alert."""

from __future__ import annotations

import asyncio

from pvetop.engine.daemon import Daemon
from pvetop.engine.jobs import KEPT_ALERTS, KEPT_FINISHED_JOBS, JobState
from pvetop.engine.migrations import MigrationJob, MoveOptions
from pvetop.errors import ApiError
from pvetop.policy.placement import planned_move
from pvetop.store import open_store
from tests.factories import make_guest


def finished_job(number: int) -> MigrationJob:
    guest = make_guest(100 + number % 50, "pve1")
    move = planned_move(guest, "pve1", "pve2", "test", None)
    done = JobState.SUCCEEDED
    return MigrationJob(id=number, actor="balancer", queued_at=0.0, move=move, options=MoveOptions(), state=done)


def test_the_daemon_forgets_the_moves_and_alerts_its_workers_forgot(tmp_path):
    """The daemon said each move's end once under a topic of its own and kept the topic forever;
    the workers kept every alert. Now the topics follow the executor's kept jobs, and the workers
    keep their last KEPT_ALERTS alerts (the log has them all)."""
    said: list[str] = []
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        daemon = Daemon(None, store, "test", said.append, clock=lambda: 0.0)
        jobs = [finished_job(n) for n in range(3 * KEPT_FINISHED_JOBS)]
        for job in jobs:
            # the executor keeps the last KEPT_FINISHED_JOBS
            daemon.executor.jobs = [*daemon.executor.jobs[-(KEPT_FINISHED_JOBS - 1) :], job]
            daemon._job_changed(job)
        assert len(said) == len(jobs)  # each move's end said once
        assert len([t for t in daemon._said if t.startswith("job")]) <= KEPT_FINISHED_JOBS
        daemon._job_changed(jobs[-1])
        assert len(said) == len(jobs)  # and not again
        for worker in (daemon.balancer, daemon.power):
            for n in range(3 * KEPT_ALERTS):
                worker._alert(f"alert {n}")
            assert len(worker.alerts) == KEPT_ALERTS and worker.alerts[-1] == f"alert {3 * KEPT_ALERTS - 1}"


async def test_an_automatic_power_action_whose_first_read_fails_is_an_alert(tmp_path):
    """The soak's smb run: an automatic power-off's first read met a 500 (GET /cluster/status),
    and asyncio said 'Task exception was never retrieved'. Now the worker alerts; the next round
    plans again."""

    async def failing() -> None:
        raise ApiError(500, "GET /cluster/status: 500 simulated fault: internal server error")

    with open_store(str(tmp_path / "rules.sqlite")) as store:
        worker = Daemon(None, store, "test", print, clock=lambda: 0.0).power
        task = worker.start(failing(), "pve5")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # the done callback runs
        assert not worker.running
        assert worker.alerts == [
            "pve5: power-pve5 stopped before it began: GET /cluster/status: 500 simulated fault: internal server error"
        ]
