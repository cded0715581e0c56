"""Runs the power worker in ``auto`` against a manual-clock simulator for hours or days.

Simulated time moves ``step`` seconds between two evaluations; while the worker drains, shuts
down or wakes a node, time moves in small steps in lock-step with it (``simdrive.drive``).
``watch(sim)`` is called after every step of the outer loop, for figures a test or bench keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pvetop.config import settings_from_sim_info
from pvetop.engine.power import PowerWorker
from pvetop.pve import PveClient
from pvetop.store import open_store
from tests.engine.simdrive import TaskReads, drive


def sim_client(sim) -> PveClient:
    """A client whose snapshots carry the simulator's time (so staleness is judged in sim time)."""
    return PveClient.connect(settings_from_sim_info(sim.info), clock=lambda: sim.cluster.now)


def sim_store(sim, path: str):
    """A rules store whose journal carries the simulator's time (the daily cycle cap reads it)."""
    return open_store(path, clock=lambda: sim.cluster.now)


def auto_worker(sim, client, store, cluster: str) -> PowerWorker:
    worker = PowerWorker(client, store, cluster, clock=lambda: sim.cluster.now, poll=0.01)
    count_reads(worker)
    return worker


def count_reads(worker: PowerWorker) -> list[int]:
    """Counts the snapshots the worker has read (one counter per worker), so time can move in
    lock-step with it however loaded the machine is."""
    counter = getattr(worker, "_test_reads", None)
    if counter is None:
        counter = [0]
        read = worker.snapshot

        async def counted():
            snapshot = await read()
            counter[0] += 1
            return snapshot

        worker.snapshot = counted  # type: ignore[method-assign]
        worker._test_reads = counter  # type: ignore[attr-defined]
    return counter


async def follow(sim, worker: PowerWorker, done: Callable[[], bool], *, limit: float = 6 * 3600) -> None:
    """Moves time while the worker acts: in lock-step with its task reads while migrations run,
    otherwise 2 s at a time, each step waiting until the worker has read the cluster (or the task
    it waits on, such as a guest's shutdown) again."""
    start = sim.cluster.now
    executor = worker.executor
    reads = count_reads(worker)
    task_reads = TaskReads.of(sim)
    while not done():
        if sim.cluster.now - start > limit:
            raise AssertionError(f"the power worker was still busy after {limit:g} simulated seconds")
        if executor is not None and executor.busy:
            await drive(sim, lambda: done() or not executor.busy, step=2.0, limit=limit)
            continue
        seen, seen_tasks = reads[0], task_reads.count
        sim.cluster.step(2.0)
        for _ in range(400):  # x 5 ms of real time at most
            await asyncio.sleep(0.005)
            looked = reads[0] > seen or task_reads.count > seen_tasks  # a snapshot, or a task it waits on
            if looked or done() or executor is not None and executor.busy:
                break


async def simulate(
    sim,
    worker: PowerWorker,
    *,
    seconds: float,
    step: float = 60.0,
    watch: Callable[[object], None] | None = None,
    until: Callable[[], bool] | None = None,
) -> None:
    """Runs the worker for ``seconds`` of simulated time, or until ``until()`` holds."""
    end = sim.cluster.now + seconds
    while sim.cluster.now < end and not (until is not None and until()):
        await worker.step()
        if worker.running:
            pending = list(worker.running.values())
            await follow(sim, worker, lambda: all(task.done() for task in pending))  # noqa: B023 (awaited here)
            for task in pending:
                task.result()  # an exception in the worker fails the run
            continue
        sim.cluster.step(step)
        if watch is not None:
            watch(sim)
