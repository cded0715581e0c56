"""Evacuations while nodes crash: re-plan, move recovered guests off again, end a dead source's moves.

The simulator crashes nodes the way PVE loses them (gone at once; the HA manager fences and later
recovers their HA-managed guests elsewhere). The result must say where the guests are.
"""

from __future__ import annotations

import asyncio

from pvetop.engine.evacuation import prepare_evacuation, run_evacuation
from pvetop.engine.migrations import JobState, Limits, MigrationExecutor
from tests.engine.simdrive import drive, guest_node, migration_tasks

SOURCE = "pve-mini1"


def crash(sim, node: str) -> float:
    with sim.cluster.lock:
        sim.cluster.crash_node(node)
        return sim.cluster.now


def target_of(task) -> str:
    return next(text for _, text in task.lines if "starting migration of" in text).split("to node '")[1].rstrip("'")


async def evacuate_while(sim, client, store, *, limits: Limits, when, ha_watch: float = 30.0):
    """Runs an evacuation of SOURCE; ``when(executor)`` is called between steps and may crash nodes."""
    proposal = await prepare_evacuation(client, client.fetch_snapshot(), SOURCE, store.ruleset("homelab"))
    executor = MigrationExecutor(client, store=store, cluster="homelab", limits=limits, poll=0.01)
    running = asyncio.ensure_future(run_evacuation(executor, proposal, ha_watch=ha_watch))

    def until() -> bool:
        when(executor)
        return running.done()

    await drive(sim, until, step=2.0, limit=1200)
    return proposal, running.result()


def assert_locations_are_true(sim, result) -> None:
    """Where the result says each guest is must be where the simulator has it; the one change allowed
    since is PVE's own: an HA guest left on a crashed source that the HA manager recovered elsewhere
    (it fences the node and recovers its services on its own clock, which the drive goes on stepping
    until the evacuation's coroutine has returned)."""
    assert result.locations, "the result names where the guests are"
    now = {vmid: guest_node(sim, vmid) for vmid in result.locations}
    moved_since = {vmid for vmid, node in now.items() if node != result.locations[vmid]}
    assert all(recovered_by_ha(sim, vmid, result.locations[vmid]) for vmid in moved_since), (now, result.locations)


def recovered_by_ha(sim, vmid: int, fenced: str) -> bool:
    with sim.cluster.lock:
        return any(
            f"from fenced node '{fenced}'" in text and f":{vmid}'" in text and text.startswith("recover service")
            for _, _, text in sim.cluster.ha.log
        )


async def test_queued_moves_to_a_target_that_crashed_are_replanned_not_started(sim, client, store):
    crashed_at: list[float] = []

    def crash_big_once_running(executor) -> None:
        if not crashed_at and any(job.state is JobState.RUNNING for job in executor.jobs):
            crashed_at.append(crash(sim, "pve-big"))

    proposal, result = await evacuate_while(
        sim, client, store, limits=Limits(max_parallel=1), when=crash_big_once_running
    )

    assert crashed_at and any(move.target == "pve-big" for move in proposal.plan.moves)
    late = [task for task in migration_tasks(sim) if task.starttime > crashed_at[0]]
    assert late and all(target_of(task) != "pve-big" for task in late)  # nothing started towards the dead node
    started_before = {int(task.id) for task in migration_tasks(sim) if task.starttime <= crashed_at[0]}
    waiting_for_big = {move.vmid for move in proposal.plan.moves if move.target == "pve-big"} - started_before
    assert waiting_for_big and {vmid: guest_node(sim, vmid) for vmid in waiting_for_big} == {
        vmid: "pve-mini2" for vmid in waiting_for_big
    }  # moved to the node still up, not failed
    assert result.replanned and "re-planned after their target went offline" in result.summary()
    assert_locations_are_true(sim, result)
    moved = [vmid for vmid, node in result.locations.items() if node != SOURCE]
    assert moved and all(result.locations[vmid] in ("pve-mini2", "pve-big") for vmid in moved)


async def test_guests_the_ha_manager_recovers_onto_the_node_are_moved_off_again(sim, client, store):
    crashed: list[float] = []

    def crash_mini2_after_the_first_move(executor) -> None:
        if not crashed and any(job.succeeded for job in executor.jobs):
            crashed.append(crash(sim, "pve-mini2"))

    _, result = await evacuate_while(
        sim, client, store, limits=Limits(), when=crash_mini2_after_the_first_move, ha_watch=120.0
    )

    # ct:112 (HA, preferring the minis) ran on pve-mini2: once fenced, PVE's HA manager recovers it
    # onto pve-mini1, the node being emptied; the evacuation moves it off again
    moved_off_again = [
        task
        for task in migration_tasks(sim)
        if task.id == "112" and task.node == SOURCE and task.starttime > crashed[0]
    ]
    assert moved_off_again, "the recovered guest was not moved off the evacuated node"
    assert 112 in result.returned and "came to pve-mini1 during it (HA recovery)" in result.summary()
    assert_locations_are_true(sim, result)
    journal = [e for e in store.recent_journal("homelab") if e.action == "evacuate"][0]
    assert journal.params["locations"] == {str(vmid): node for vmid, node in result.locations.items()}


async def test_a_crashed_source_ends_its_moves_at_once(sim, client, store):
    crashed: list[float] = []

    def crash_source_while_moving(executor) -> None:
        if not crashed and any(job.state is JobState.RUNNING and job.upid for job in executor.jobs):
            crashed.append(crash(sim, SOURCE))

    _, result = await evacuate_while(sim, client, store, limits=Limits(), when=crash_source_while_moving)

    assert result.source_lost and not result.complete
    ended = [job for job in result.jobs if job.state is JobState.FAILED]
    # the move running at the crash is ended by the watch (a move that started in between fails by itself)
    assert any(f"{SOURCE} went offline during the evacuation" in job.error for job in ended)
    assert all(job.state.finished for job in result.jobs)
    assert f"{SOURCE} went offline: its moves were ended" in result.summary()
    assert_locations_are_true(sim, result)
