"""A migrate POST whose answer is lost is checked against the task list before it is called failed.

The request may have reached the cluster (a timeout after PVE started the task, a proxy's 500):
a running migration of the guest by this user is adopted and followed; when the task list shows
nothing started, sending again is safe and one server error no longer fails the move for good.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from pvetop.config import settings_from_sim_info
from pvetop.engine.migrations import JobState, MigrationExecutor
from pvetop.errors import ApiError
from pvetop.pve import PveClient, actions
from pvetop.sim.errors import PveApiError
from tests.engine.powerdrive import sim_store
from tests.engine.simdrive import drive, guest_node, migration_tasks
from tests.engine.test_migrations import move_of


async def run(sim, client, vmid: int, target: str):
    executor = MigrationExecutor(client, poll=0.01, clock=lambda: sim.cluster.now)
    job = executor.submit(move_of(client, vmid, target))
    await drive(sim, lambda: not executor.busy)
    await executor.wait()
    return job


async def test_a_timed_out_post_that_started_the_migration_is_followed_not_failed(sim, monkeypatch):
    original = sim.cluster.migrate

    def slow_answer(*args, **kwargs):  # PVE starts the task, the answer arrives after the client gave up
        upid = original(*args, **kwargs)
        time.sleep(1.5)
        return upid

    monkeypatch.setattr(sim.cluster, "migrate", slow_answer)
    with PveClient.connect(replace(settings_from_sim_info(sim.info), timeout=0.5)) as client:
        job = await run(sim, client, 103, "pve-big")

    assert job.state is JobState.SUCCEEDED, job.error
    assert len([t for t in migration_tasks(sim) if t.id == "103"]) == 1  # adopted, not sent twice
    assert job.upid == migration_tasks(sim)[-1].upid
    assert guest_node(sim, 103) == "pve-big"


@pytest.mark.parametrize(("vmid", "kind"), [(103, "qmigrate"), (100, "hamigrate")])
async def test_a_lost_answer_to_a_migration_over_before_the_client_gave_up_is_adopted(sim, vmid, kind):
    """The simulator carries the POST out and never answers; by the time the client gives up, a
    short migration (or an HA request, over within a second) has ended: it is the one started,
    followed to its end, and never sent again."""
    original = sim.cluster.migrate

    def answer_lost_after_the_end(*args, **kwargs):
        upid = original(*args, **kwargs)
        sim.cluster.step(900)  # the move is over before the answer would have arrived
        return upid

    sim.cluster.migrate = answer_lost_after_the_end
    sim.cluster.faults.update({"lost_answer_rate": 1.0}, sim.cluster.now)
    with PveClient.connect(replace(settings_from_sim_info(sim.info), timeout=0.5)) as client:
        job = await run(sim, client, vmid, "pve-mini2")

    assert job.state is JobState.SUCCEEDED, job.error
    requests = [t for t in sim.cluster.tasks if t.id == str(vmid) and t.user.endswith("!pvetop")]
    assert [t.type for t in requests] == [kind]  # adopted, not sent twice
    # the token's own request, not the HA manager's migration it led to (which runs as root@pam)
    assert (job.ha_upid if kind == "hamigrate" else job.upid) == requests[0].upid
    assert guest_node(sim, vmid) == "pve-mini2"


async def test_a_failed_read_of_the_task_list_is_read_again_before_the_move_is_called_failed(sim, monkeypatch):
    """The answer was lost and the first look at the task list failed too (a 500 from a busy
    node): the list is read again, the migration found and followed, nothing sent twice."""
    reads = []
    original = actions.started_migration

    def flaky_read(*args, **kwargs):
        reads.append(args)
        if len(reads) == 1:
            raise ApiError(500, "GET nodes/pve-mini1/tasks: internal server error")
        return original(*args, **kwargs)

    monkeypatch.setattr(actions, "started_migration", flaky_read)
    sim.cluster.faults.update({"lost_answer_rate": 1.0}, sim.cluster.now)
    with PveClient.connect(replace(settings_from_sim_info(sim.info), timeout=0.5)) as client:
        job = await run(sim, client, 103, "pve-big")

    assert job.state is JobState.SUCCEEDED, job.error
    assert len(reads) == 2 and len([t for t in migration_tasks(sim) if t.id == "103"]) == 1


async def test_one_server_error_on_the_post_is_retried_when_nothing_started(sim, client, monkeypatch):
    original = sim.cluster.migrate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise PveApiError(500, "proxy loop detected")  # answered without starting anything
        return original(*args, **kwargs)

    monkeypatch.setattr(sim.cluster, "migrate", flaky)
    job = await run(sim, client, 103, "pve-big")

    assert job.state is JobState.SUCCEEDED, job.error
    assert len(calls) == 2 and len(migration_tasks(sim)) == 1
    assert guest_node(sim, 103) == "pve-big"


async def test_a_refusal_pve_keeps_repeating_fails_with_its_text(sim, client, monkeypatch):
    calls = []

    def locked(*args, **kwargs):
        calls.append(args)
        raise PveApiError(500, "VM is locked (backup)")

    monkeypatch.setattr(sim.cluster, "migrate", locked)
    job = await run(sim, client, 103, "pve-big")

    assert job.state is JobState.FAILED and "VM is locked (backup)" in job.error
    assert len(calls) == 3 and not migration_tasks(sim)


async def test_a_parameter_refusal_is_not_sent_again(sim, client, monkeypatch):
    calls = []

    def refused(*args, **kwargs):
        calls.append(args)
        raise PveApiError(400, "Parameter verification failed.", {"target": "no such node"})

    monkeypatch.setattr(sim.cluster, "migrate", refused)
    job = await run(sim, client, 103, "pve-big")

    assert job.state is JobState.FAILED and "target: no such node" in job.error
    assert len(calls) == 1


async def test_a_lost_answer_from_a_node_that_crashed_is_found_in_the_cluster_task_list(sim, tmp_path):
    """The HA request reached postgres's node, then the node crashed before the answer came: its
    own task list cannot be read, PVE's cluster-wide list (any node answers it) still shows the
    request. It is journaled under its UPID (the soak saw an HA request of this token nowhere in
    the journal, the move 'refused' as the node's list was unreadable); the job then fails, as
    the request's task cannot be followed on a node that is down."""
    original = sim.cluster.migrate

    def crash_before_the_answer(*args, **kwargs):
        upid = original(*args, **kwargs)
        sim.cluster.crash_node("pve-big")
        return upid

    sim.cluster.migrate = crash_before_the_answer
    sim.cluster.faults.update({"lost_answers": 1}, sim.cluster.now)
    settings = replace(settings_from_sim_info(sim.info), timeout=0.5)
    with PveClient.connect(settings) as client, sim_store(sim, str(tmp_path / "rules.sqlite")) as store:
        executor = MigrationExecutor(client, store=store, cluster="homelab", poll=0.01, clock=lambda: sim.cluster.now)
        job = executor.submit(move_of(client, 205, "pve-mini2"), actor="balancer")
        await drive(sim, lambda: not executor.busy)
        await executor.wait()
        journaled = {entry.upid for entry in store.journal_entries("homelab", actions=("migrate",))}

    requests = [t.upid for t in sim.cluster.tasks if t.id == "205" and t.user.endswith("!pvetop")]
    assert len(requests) == 1 and job.ha_upid == requests[0]
    assert requests[0] in journaled
    assert job.state is JobState.FAILED
