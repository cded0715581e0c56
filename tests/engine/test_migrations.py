"""MigrationExecutor against the simulator: progress, HA, refusals, failures, limits, stop."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pvetop.engine.jobs import JobState, failure_line, real_lines
from pvetop.engine.migrations import Limits, MigrationExecutor, MoveOptions
from pvetop.engine.report import job_status, progress_text
from pvetop.errors import UsageError
from pvetop.policy.placement import planned_move
from pvetop.pve import actions
from pvetop.pve.tasks import Progress, parse_upid
from pvetop.store import open_store
from tests.engine.simdrive import (
    connect,
    drive,
    guest_node,
    max_overlap,
    migration_tasks,
    running_sim,
    set_failure_rate,
)


def move_of(client, vmid: int, target: str, *, with_precondition: bool = True):
    guest = client.fetch_snapshot().guest_by_vmid[vmid]
    precondition = actions.migrate_precondition(client, guest, target) if with_precondition else None
    return planned_move(guest, guest.node, target, "test", precondition)


def executor_for(client, **kwargs) -> tuple[MigrationExecutor, list]:
    seen: list = []
    kwargs.setdefault("poll", 0.01)
    executor = MigrationExecutor(client, on_update=lambda job: seen.append((job.state, job.progress)), **kwargs)
    return executor, seen


async def run_all(sim, executor: MigrationExecutor, *, step: float = 1.0) -> None:
    await drive(sim, lambda: not executor.busy, step=step)
    await executor.wait()


async def test_online_migration_on_shared_storage_reports_progress_and_moves_the_guest(sim, client, store):
    executor, seen = executor_for(client, store=store, cluster="homelab")
    job = executor.submit(move_of(client, 103, "pve-big"))
    await run_all(sim, executor)

    assert job.state is JobState.SUCCEEDED and job.error is None
    assert parse_upid(job.upid).type == "qmigrate" and not job.via_ha
    fractions = [progress.fraction for state, progress in seen if progress.fraction is not None]
    assert len(fractions) >= 3 and fractions == sorted(fractions) and fractions[0] < fractions[-1]
    assert guest_node(sim, 103) == "pve-big"
    assert client.fetch_snapshot().guest_by_vmid[103].node == "pve-big"
    journal = store.recent_journal("homelab")
    assert [(e.action, e.target, e.result, e.upid) for e in journal] == [
        ("migrate", "guest/103", "ok", job.upid),
        ("migrate", "guest/103", "started", job.upid),
    ]
    assert journal[0].params["target"] == "pve-big" and journal[0].actor == "user"


async def test_local_disk_vm_needs_with_local_disks(sim, client):
    executor, _ = executor_for(client)
    planned = move_of(client, 104, "pve-big")
    assert planned.online and planned.with_local_disks  # the precondition lists its local-lvm disk

    refused = executor.submit(replace(planned, with_local_disks=False))
    await run_all(sim, executor)
    assert refused.state is JobState.FAILED
    assert "can't live migrate attached local disks without with-local-disks option" in refused.error
    assert guest_node(sim, 104) == "pve-mini1"

    done = executor.submit(planned)
    await run_all(sim, executor)
    assert done.state is JobState.SUCCEEDED, done.error
    assert any("drive-scsi0: transferred" in line for line in done.log)
    assert guest_node(sim, 104) == "pve-big"


async def test_precondition_is_fetched_when_the_plan_lacks_it(sim, client):
    executor, _ = executor_for(client)
    planned = move_of(client, 104, "pve-big", with_precondition=False)
    assert planned.with_local_disks is None
    job = executor.submit(planned)
    await run_all(sim, executor)
    assert job.state is JobState.SUCCEEDED and job.move.with_local_disks is True


async def test_container_migrates_by_restart_with_timeout(sim, client):
    executor, _ = executor_for(client)
    planned = move_of(client, 102, "pve-mini2")
    assert planned.restart and not planned.online
    job = executor.submit(planned, MoveOptions(restart_timeout=30))
    await run_all(sim, executor)
    assert job.state is JobState.SUCCEEDED, job.error
    assert parse_upid(job.upid).type == "vzmigrate"
    assert any("shutdown CT 102" in line for line in job.log)
    assert guest_node(sim, 102) == "pve-mini2"
    assert client.fetch_snapshot().guest_by_vmid[102].running


async def test_ha_guest_moves_through_the_ha_manager(sim, client):
    executor, _ = executor_for(client)
    job = executor.submit(move_of(client, 100, "pve-big"))
    statuses: set[str] = set()

    def watching() -> bool:
        statuses.add(job_status(job))
        return not executor.busy

    await drive(sim, watching)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.via_ha and parse_upid(job.ha_upid).type == "hamigrate" and parse_upid(job.upid).type == "qmigrate"
    assert "via HA manager: waiting for it to start the migration" in statuses
    assert any("Requesting HA migration" in line for line in job.log)
    assert guest_node(sim, 100) == "pve-big"


async def test_ha_move_to_an_offline_node_dropped_by_the_crm_is_reported(sim, client):
    """PVE's CRM drops an HA migrate to a node that is not online (Manager.pm
    update_crm_commands: "crm command error - node not online"): the hamigrate task is OK and no
    qmigrate ever comes; the job fails with the reason once the CRM has had a round, not after
    the follow-up timeout."""
    move = move_of(client, 100, "pve-big")
    sim.cluster.crash_node("pve-big")
    executor, _ = executor_for(client, ha_followup_timeout=3600)
    job = executor.submit(move)
    await run_all(sim, executor)
    assert job.state is JobState.FAILED and job.upid is None
    assert "dropped the move: node 'pve-big' is" in job.error and "not online" in job.error
    assert guest_node(sim, 100) == "pve-mini1"


async def test_ha_move_refused_for_negative_affinity_is_reported():
    """PVE's CRM refuses a move onto the node of a negative-affinity partner (Manager.pm
    queue_resource_motion): smb's vm:104 onto pve5, where vm:105 is. The job fails naming it."""
    with running_sim("smb") as smb, connect(smb) as api:
        executor, _ = executor_for(api, ha_followup_timeout=3600)
        job = executor.submit(move_of(api, 104, "pve5"))
        await run_all(smb, executor)
        assert job.state is JobState.FAILED
        assert job.error == "the HA manager refused the move: vm:105 on 'pve5' in negative affinity with vm:104"
        assert guest_node(smb, 104) == "pve4"


async def test_api_refusal_fails_the_job_with_pves_text_and_is_journaled(sim, client, store):
    executor, _ = executor_for(client, store=store, cluster="homelab")
    job = executor.submit(replace(move_of(client, 103, "pve-big"), online=False))
    await run_all(sim, executor)
    assert job.state is JobState.FAILED and job.upid is None
    assert "can't migrate running VM without --online" in job.error
    entry = store.recent_journal("homelab")[0]
    assert entry.result.startswith("refused: ") and "without --online" in entry.result


async def test_injected_failure_shows_its_log_line_and_the_guest_stays(sim, client, store):
    set_failure_rate(sim, 1.0)
    executor, _ = executor_for(client, store=store, cluster="homelab")
    failed = executor.submit(move_of(client, 103, "pve-big"))
    await run_all(sim, executor)
    assert failed.state is JobState.FAILED
    assert failed.exitstatus == "migration problems"  # the RAM copy failed (PVE's phase 2)
    assert "ERROR: online migrate failure - aborting" in failed.error
    assert guest_node(sim, 103) == "pve-mini1"
    assert store.recent_journal("homelab")[0].result.startswith("failed: migration problems")

    set_failure_rate(sim, 0.0)  # the executor goes on working
    retried = executor.submit(move_of(client, 103, "pve-big"))
    await run_all(sim, executor)
    assert retried.state is JobState.SUCCEEDED and guest_node(sim, 103) == "pve-big"


async def test_automatic_moves_hold_cluster_wide_and_per_source_limits(sim, client):
    executor, _ = executor_for(client, limits=Limits(max_parallel=2, max_per_source=1, max_per_target=2))
    moves = [move_of(client, vmid, "pve-big") for vmid in (101, 102, 105, 106)]
    moves += [move_of(client, 110, "pve-big"), move_of(client, 112, "pve-mini1")]  # ct:112's HA rule: the minis
    jobs = [executor.submit(move, actor="balancer") for move in moves]
    await run_all(sim, executor)
    assert all(job.succeeded for job in jobs), [job.error for job in jobs if not job.succeeded]
    record = migration_tasks(sim)
    assert len(record) == 6
    assert max_overlap(record) == 2  # two at once did happen, never three
    assert max_overlap(record, key=lambda task: task.node) == 1


async def test_automatic_moves_arrive_one_at_a_time_per_target(sim, client):
    executor, _ = executor_for(client, limits=Limits(max_parallel=2, max_per_source=2, max_per_target=1))
    jobs = [executor.submit(move_of(client, vmid, "pve-big"), actor="balancer") for vmid in (101, 102, 110)]
    await run_all(sim, executor)
    assert all(job.succeeded for job in jobs), [job.error for job in jobs if not job.succeeded]
    record = migration_tasks(sim)
    assert len(record) == 3 and max_overlap(record) == 1  # every move goes to pve-big: one at a time


async def test_user_moves_leave_one_source_two_at_a_time(sim, client):
    """The per-source limit binds automation only: a user's evacuation runs max_parallel at once."""
    executor, _ = executor_for(client, limits=Limits(max_parallel=2, max_per_source=1))
    jobs = [executor.submit(move_of(client, vmid, "pve-big")) for vmid in (101, 102, 105)]
    await run_all(sim, executor)
    assert all(job.succeeded for job in jobs)
    assert max_overlap(migration_tasks(sim), key=lambda task: task.node) == 2


async def test_stop_cancels_a_queued_job_and_stops_a_running_task(sim, client):
    executor, _ = executor_for(client, limits=Limits(max_parallel=1))
    running = executor.submit(move_of(client, 103, "pve-big"))
    queued = executor.submit(move_of(client, 102, "pve-big"))
    await drive(sim, lambda: running.upid is not None and running.progress.fraction is not None)
    await executor.stop(queued)
    await executor.stop(running)
    await run_all(sim, executor)
    assert queued.state is JobState.CANCELLED and queued.upid is None
    assert running.state is JobState.FAILED and "interrupted by signal" in running.error
    assert guest_node(sim, 103) == "pve-mini1" and guest_node(sim, 102) == "pve-mini1"


async def test_submit_refuses_bad_requests(client):
    executor, _ = executor_for(client)
    move = move_of(client, 103, "pve-big")
    with pytest.raises(UsageError, match="already on"):
        executor.submit(replace(move, target=move.source))
    with pytest.raises(UsageError, match="actor"):
        executor.submit(move, actor="robot")
    executor.submit(move)
    with pytest.raises(UsageError, match="already being migrated"):
        executor.submit(move)
    await executor.aclose()


def test_limits_validate_and_come_from_settings(tmp_path):
    with pytest.raises(UsageError, match="max_parallel"):
        Limits(max_parallel=0)
    with pytest.raises(UsageError, match="max_per_source"):
        Limits(max_per_source="2")
    with pytest.raises(UsageError, match="max_per_target"):
        Limits(max_per_target=0)
    with pytest.raises(UsageError, match="bwlimit"):
        MoveOptions(bwlimit_kib=-5)
    with open_store(str(tmp_path / "rules.sqlite")) as store:
        assert Limits.from_store(store, "homelab") == Limits(2, 1)
        store.set_setting("homelab", "migrations.max_parallel", 3)
        assert Limits.from_store(store, "homelab") == Limits(3, 1)


def test_failure_line_and_progress_text():
    lines = [
        "2026-01-01 00:00:05 ERROR: online migrate failure - aborting",
        "2026-01-01 00:00:05 ERROR: migration aborted (duration 00:00:05): online migrate failure - aborting",
        "TASK ERROR: migration aborted",
    ]
    assert failure_line(lines) == "ERROR: migration aborted (duration 00:00:05): online migrate failure - aborting"
    assert failure_line(["TASK OK"]) is None
    assert progress_text(Progress()) == ""
    assert (
        progress_text(
            Progress(transferred_bytes=2 * 1024**3, total_bytes=8 * 1024**3, fraction=0.25, rate=110 * 1024**2)
        )
        == "25% (2.0 GiB of 8.0 GiB, 110.0 MiB/s)"
    )
    assert progress_text(Progress(transferred_bytes=512 * 1024**2)) == "512.0 MiB copied"


async def test_only_the_latest_finished_jobs_are_kept(sim, client, monkeypatch):
    monkeypatch.setattr("pvetop.engine.jobs.KEPT_FINISHED_JOBS", 1)
    executor, _ = executor_for(client)
    refused = replace(move_of(client, 103, "pve-big"), online=False)  # PVE refuses at once
    for _ in range(3):
        await executor.wait([executor.submit(refused)])
    assert len(executor.jobs) == 2 and [job.id for job in executor.jobs] == [2, 3]
    assert all(job.state is JobState.FAILED for job in executor.jobs)


def test_the_empty_log_placeholder_is_not_a_line():
    assert real_lines(["no content"], seen=0) == []
    assert real_lines(["no content"], seen=3) == ["no content"]  # a real line saying so, later in a log
    assert real_lines(["starting migration"], seen=0) == ["starting migration"]


async def test_tracking_survives_a_short_api_outage(sim, client):
    executor, _ = executor_for(client)
    job = executor.submit(move_of(client, 103, "pve-big"))
    await drive(sim, lambda: job.progress.fraction is not None)
    with sim.cluster.lock:
        sim.cluster.faults.update({"outage_seconds": 15}, sim.cluster.now)
    await drive(sim, lambda: not executor.busy, step=5.0)
    assert job.state is JobState.SUCCEEDED, job.error
    assert guest_node(sim, 103) == "pve-big"


async def test_a_long_outage_reports_the_job_as_lost_not_as_failed_by_pve(sim, client):
    executor, _ = executor_for(client, lost_after=0.0)
    job = executor.submit(move_of(client, 103, "pve-big"))
    await drive(sim, lambda: job.progress.fraction is not None)
    with sim.cluster.lock:
        sim.cluster.faults.update({"outage_seconds": 600}, sim.cluster.now)
    await drive(sim, lambda: not executor.busy, step=5.0)
    assert job.state is JobState.FAILED and job.exitstatus is None
    assert job.error.startswith("lost track of task") and "it may still be running" in job.error


def test_edge_23_progress_names_its_phase_so_a_restart_at_a_lower_percent_reads_right():
    from pvetop.pve.tasks import parse_migration_progress

    disks = [
        "2026-01-01 00:00:01 drive-scsi0: transferred 8.6 GiB of 10.0 GiB (86.00%) in 10s",
    ]
    ram = [*disks, "2026-01-01 00:00:20 migration active, transferred 0.8 GiB of 4.0 GiB VM-state, 100.0 MiB/s"]
    assert progress_text(parse_migration_progress(disks)).startswith("disks 86%")
    assert progress_text(parse_migration_progress(ram)).startswith("RAM 20%")
