"""Automatic moves are written down first: only the acting instance moves, and a move left half
done by a dead instance is followed by the next one, never repeated (the sim's task record is the witness)."""

from __future__ import annotations

import pytest

from pvetop.engine.intents import IntentLog
from pvetop.engine.lease import LeaseKeeper
from pvetop.engine.migrations import JobState, MigrationExecutor
from pvetop.store import open_store
from tests.engine.simdrive import drive, guest_node, migration_tasks, step_until
from tests.engine.test_migrations import move_of

C = "homelab"


class SimClock:
    """The instances read the simulator's clock, as pvetop reads a real cluster's synchronised time."""

    def __init__(self, sim) -> None:
        self.sim = sim

    def __call__(self) -> float:
        return float(self.sim.cluster.now)


def instance(sim, client, path: str):
    clock = SimClock(sim)
    store = open_store(path, clock=clock)
    lease = LeaseKeeper(store, C, ttl=20.0, clock=clock)
    intents = IntentLog(store, C, lease, clock=clock)
    executor = MigrationExecutor(client, store=store, cluster=C, poll=0.01, intents=intents)
    return store, lease, intents, executor


@pytest.fixture
def shared_db(tmp_path):
    return str(tmp_path / "shared.sqlite")


async def test_the_acting_instance_writes_its_move_down_and_closes_it_with_the_upid(sim, client, shared_db):
    store, lease, _, executor = instance(sim, client, shared_db)
    await lease.claim()
    job = executor.submit(move_of(client, 103, "pve-big"), actor="balancer")
    await drive(sim, lambda: job.state.finished)
    await executor.wait()
    assert job.state is JobState.SUCCEEDED
    [record] = store.coordination.intents(C)
    assert (record.state, record.upid, record.vmid, record.target) == ("done", job.upid, 103, "pve-big")
    assert record.token == lease.state.token  # (the lease is not renewed here: nothing runs its loop)


async def test_an_instance_that_is_not_acting_starts_no_automatic_move(sim, client, shared_db):
    _, acting, _, _ = instance(sim, client, shared_db)
    _, other_lease, _, other = instance(sim, client, shared_db)
    await acting.claim()
    await other_lease.claim()
    job = other.submit(move_of(client, 103, "pve-big"), actor="balancer")
    await other.wait([job])
    assert job.state is JobState.FAILED and "is not acting on homelab" in job.error
    assert migration_tasks(sim) == [] and guest_node(sim, 103) != "pve-big"
    user_job = other.submit(move_of(client, 103, "pve-big"), actor="user")  # a user's move is not fenced
    await drive(sim, lambda: user_job.state.finished)
    assert user_job.state is JobState.SUCCEEDED


async def test_a_move_left_running_by_a_dead_instance_is_followed_by_the_next_not_repeated(sim, client, shared_db):
    _, first_lease, _, first = instance(sim, client, shared_db)
    store, second_lease, second_intents, _ = instance(sim, client, shared_db)
    await first_lease.claim()
    job = first.submit(move_of(client, 103, "pve-big"), actor="balancer")
    await drive(sim, lambda: job.upid is not None)
    await first.aclose()  # killed mid-move: its task goes on in the cluster, the intent stays open
    sim.cluster.step(21)  # its lease runs out
    assert (await second_lease.claim()).acting

    pending = await second_intents.settle(client, client.fetch_snapshot())
    assert [p.outcome for p in pending] == ["follow"] and pending[0].upid == job.upid
    # nobody reads the task until the next settle: time only needs to pass
    step_until(sim.cluster, lambda: guest_node(sim, 103) == "pve-big")
    sim.cluster.step(2)
    assert await second_intents.settle(client, client.fetch_snapshot()) == []
    [record] = store.coordination.intents(C)
    assert record.state == "done" and "settled by" in record.detail
    assert len([t for t in migration_tasks(sim) if t.id == "103"]) == 1  # moved once, never twice


async def test_a_request_that_never_left_is_abandoned_once_old_enough(sim, client, shared_db):
    store, lease, intents, _ = instance(sim, client, shared_db)
    await lease.claim()
    token = lease.token
    orphan = store.coordination.open_intent(
        C, token=token, actor="balancer", action="migrate", vmid=103, source="pve-mini1", target="pve-big"
    )
    intents._mine.clear()  # as if written by an earlier run of this instance
    assert [p.outcome for p in await intents.settle(client, client.fetch_snapshot())] == ["wait"]
    sim.cluster.step(121)
    assert await intents.settle(client, client.fetch_snapshot()) == []
    [record] = [r for r in store.coordination.intents(C) if r.id == orphan.id]
    assert record.state == "abandoned" and "no task started" in record.detail
