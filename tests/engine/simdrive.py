"""Helpers for migration tests against the simulator with a manual clock.

The code under test polls the sim over HTTPS; the test moves simulated time with
``sim.cluster.step`` meanwhile, so migrations finish without any wall-clock wait. The sim's own
task record is the witness for concurrency and targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

from pvetop.config import settings_from_sim_info
from pvetop.pve import PveClient
from pvetop.sim.runner import start_sim

MIGRATION_TYPES = ("qmigrate", "vzmigrate")
STEP_SECONDS = 1.0
READ_WAIT_ROUNDS = 200  # x 5 ms: how long a step waits for the code under test to read its tasks


@contextlib.contextmanager
def running_sim(scenario: str = "homelab") -> Iterator[object]:
    with start_sim(scenario=scenario, seed=1, manual_clock=True) as sim:
        yield sim


def connect(sim) -> PveClient:
    return PveClient.connect(settings_from_sim_info(sim.info))


class TaskReads:
    """Counts the task status/log reads the sim answers, so a test can step time in lock-step with
    the code under test: after each step it waits (briefly, in real time) until that code has
    looked at its running tasks again, and so sees every progress line however loaded the machine.

    Only tasks someone follows are waited for: the ones the API started (a token's user) and the
    ones read already. The HA manager's and the nodes' own tasks (``root@pam``: a guest moved back
    by its node-affinity rule, a node's start-all) run on unread, and waiting a real second per
    step for a reader that never comes made a simulated day of power cycles take many minutes."""

    HA_USER = "root@pam"

    def __init__(self, sim) -> None:
        self.count = 0
        self.read: set[str] = set()
        self._cluster = sim.cluster
        original = sim.cluster.task_on

        def counted(node: str, upid: str):
            self.count += 1
            self.read.add(upid)
            return original(node, upid)

        sim.cluster.task_on = counted

    @classmethod
    def of(cls, sim) -> TaskReads:
        if not hasattr(sim, "task_reads"):
            sim.task_reads = cls(sim)
        return sim.task_reads

    def tasks_running(self) -> bool:
        """Whether a task someone follows is still running."""
        with self._cluster.lock:
            now = self._cluster.now
            return any(
                task.running(now) and (task.user != self.HA_USER or task.upid in self.read)
                for task in self._cluster.tasks
            )


async def drive(
    sim,
    until: Callable[[], bool],
    *,
    step: float = STEP_SECONDS,
    limit: float = 3600,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
    pause_seconds: float = 0.005,
) -> None:
    """Steps simulated time while the event loop runs the code under test, until ``until()``;
    after each step it waits (``pause``: ``asyncio.sleep``, or a Pilot's ``pause`` for an app)
    until the code under test has read the tasks again, so no progress line is skipped."""
    reads = TaskReads.of(sim)
    stepped = 0.0
    while not until():
        if stepped >= limit:
            raise AssertionError(f"still not done after {limit:g} simulated seconds")
        seen = reads.count
        sim.cluster.step(step)
        stepped += step
        await pause(pause_seconds)
        for _ in range(READ_WAIT_ROUNDS):
            if reads.count >= seen + 2 or not reads.tasks_running() or until():
                break
            await pause(pause_seconds)


def step_until(cluster, condition: Callable[[], bool], *, limit: float = 1800, step: float = 1.0) -> float:
    """Steps simulated time until ``condition()``, without waiting for readers (use it where
    nothing under test follows the cluster meanwhile); the simulated seconds it took."""
    waited = 0.0
    while not condition():
        if waited >= limit:
            raise AssertionError(f"condition not met within {limit:g} simulated seconds")
        cluster.step(step)
        waited += step
    return waited


def drive_thread(sim, thread: threading.Thread, *, step: float = STEP_SECONDS, limit: float = 3600) -> None:
    """Same for code running in a thread (the CLI): steps until the thread has finished."""
    reads = TaskReads.of(sim)
    stepped = 0.0
    while thread.is_alive():
        if stepped >= limit:
            raise AssertionError(f"still running after {limit:g} simulated seconds")
        seen = reads.count
        sim.cluster.step(step)
        stepped += step
        time.sleep(0.005)
        for _ in range(READ_WAIT_ROUNDS):
            if reads.count >= seen + 2 or not reads.tasks_running() or not thread.is_alive():
                break
            time.sleep(0.005)
    thread.join()


def migration_tasks(sim) -> list:
    with sim.cluster.lock:
        return [task for task in sim.cluster.tasks if task.type in MIGRATION_TYPES]


def max_overlap(tasks, key: Callable = lambda task: None) -> int:
    """The most tasks (with the same ``key``) running at any one instant of their record."""
    worst = 0
    for task in tasks:
        at = task.starttime
        running = [
            other
            for other in tasks
            if key(other) == key(task) and other.starttime <= at and (other.end_time is None or at < other.end_time)
        ]
        worst = max(worst, len(running))
    return worst


def guest_node(sim, vmid: int) -> str:
    with sim.cluster.lock:
        return sim.cluster.guests[vmid].node


def set_failure_rate(sim, rate: float) -> None:
    with sim.cluster.lock:
        sim.cluster.faults.update({"migration_failure_rate": rate}, sim.cluster.now)
