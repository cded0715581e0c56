"""Runs planned migrations: a queue with concurrency limits, live task tracking, a journal.

A job starts when
fewer than ``Limits.max_parallel`` migrations run cluster-wide and, for automatic moves (balancer,
power policy), fewer than ``Limits.max_per_source`` leave its source node and fewer than
``Limits.max_per_target`` arrive on its target — a user's evacuation
empties one node, so only the cluster-wide limit binds it; queued jobs start in submission order
as soon as their turn allows. Each running job polls its task (status + new log lines: 2 requests per poll)
and exposes the progress parsed from the log. HA-managed guests migrate through PVE's HA
manager: the migrate call returns a ``hamigrate`` task; once it is done the executor finds the
``qmigrate``/``vzmigrate`` task the manager started and follows that one.

Every start, refusal and result is journaled (``store.journal``) under the job's actor. What the
executor shares with the guest lifecycle runner (following a task, the job's bookkeeping) is in
``engine/jobs.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pvetop.engine.intents import AUTOMATIC_ACTORS, IntentLog
from pvetop.engine.jobs import HA_FOLLOWUP_TIMEOUT, LOST_AFTER, JobRunner, JobState, TaskJob, check_actor
from pvetop.engine.jobs import real_lines as real_lines  # the tasks pane strips the placeholder too
from pvetop.errors import ApiError, PvetopError, ReadOnlyRefused, UsageError
from pvetop.model import Guest
from pvetop.policy.placement import PlannedMove
from pvetop.pve import actions, tasks
from pvetop.pve.tasks import Progress

SETTING_MAX_PARALLEL = "migrations.max_parallel"
SETTING_MAX_PER_SOURCE = "migrations.max_per_source"
SETTING_MAX_PER_TARGET = "migrations.max_per_target"
DEFAULT_MAX_PARALLEL = 2  # at most 2 migrations cluster-wide at once
DEFAULT_MAX_PER_SOURCE = 1  # one automatic move leaving a node at a time
DEFAULT_MAX_PER_TARGET = 1  # and one arriving on a node at a time
MIGRATE_ATTEMPTS = 3  # a migrate POST whose task list shows it did not start is sent at most this often
CLOCK_SLACK = 5.0  # seconds a node's clock may be behind ours when its task list is read against our time


@dataclass(frozen=True, slots=True)
class Limits:
    """How many migrations may run at once: cluster-wide, and (automatic moves) leaving any one node."""

    max_parallel: int = DEFAULT_MAX_PARALLEL
    max_per_source: int = DEFAULT_MAX_PER_SOURCE
    max_per_target: int = DEFAULT_MAX_PER_TARGET

    def __post_init__(self) -> None:
        for name in ("max_parallel", "max_per_source", "max_per_target"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise UsageError(f"{name} must be a whole number between 1 and 64, not {value!r}")

    @classmethod
    def from_store(cls, store: Any, cluster: str) -> Limits:
        """The cluster's settings (``migrations.max_parallel``/``max_per_source``), else the defaults."""
        if store is None:
            return cls()
        return cls(
            max_parallel=store.get_setting(cluster, SETTING_MAX_PARALLEL, DEFAULT_MAX_PARALLEL),
            max_per_source=store.get_setting(cluster, SETTING_MAX_PER_SOURCE, DEFAULT_MAX_PER_SOURCE),
            max_per_target=store.get_setting(cluster, SETTING_MAX_PER_TARGET, DEFAULT_MAX_PER_TARGET),
        )


@dataclass(frozen=True, slots=True)
class MoveOptions:
    """What the user may add to a planned move: a bandwidth cap, a container restart timeout."""

    bwlimit_kib: int | None = None  # KiB/s, PVE's unit
    restart_timeout: int | None = None  # seconds a container gets to shut down (restart mode)

    def __post_init__(self) -> None:
        for name in ("bwlimit_kib", "restart_timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise UsageError(f"{name.replace('_', ' ')} must be a positive whole number, not {value!r}")


@dataclass(eq=False, kw_only=True)
class MigrationJob(TaskJob):
    """One planned move and everything known about its execution so far (mutated by the executor):
    ``upid`` is the qmigrate/vzmigrate task, ``ha_upid`` the hamigrate request's."""

    move: PlannedMove
    options: MoveOptions
    progress: Progress = field(default_factory=Progress)
    stop_requested: bool = False
    intent_id: int | None = None  # an automatic move's intent (see engine/intents.py)

    @property
    def vmid(self) -> int:
        return self.move.vmid

    @property
    def label(self) -> str:
        name = f" ({self.move.name})" if self.move.name else ""
        return f"{self.move.vmid}{name} {self.move.source} → {self.move.target}"

    def as_dict(self) -> dict[str, Any]:
        """The job for ``--json`` output."""
        move = self.move
        return {
            "vmid": move.vmid,
            "name": move.name,
            "type": move.type,
            "source": move.source,
            "target": move.target,
            "online": move.online,
            "restart": move.restart,
            "with_local_disks": bool(move.with_local_disks),
            "bwlimit_kib": self.options.bwlimit_kib,
            "transferred_bytes": self.progress.transferred_bytes,
            "total_bytes": self.progress.total_bytes,
            **self.task_dict(),
        }


def guest_of(move: PlannedMove) -> Guest:
    """The little of a guest the migrate endpoint needs: where it is, what it is, whether it runs."""
    return Guest(
        vmid=move.vmid,
        type=move.type,
        node=move.source,
        name=move.name,
        status="running" if move.online or move.restart else "stopped",
    )


class MigrationExecutor(JobRunner[MigrationJob]):
    """Queues planned moves and runs them through ``pve.actions`` within ``limits``."""

    def __init__(
        self,
        client: Any,
        *,
        store: Any = None,
        cluster: str = "",
        limits: Limits | None = None,
        poll: float = 1.0,
        on_update: Callable[[MigrationJob], None] | None = None,
        clock: Callable[[], float] = time.time,
        ha_followup_timeout: float = HA_FOLLOWUP_TIMEOUT,
        lost_after: float = LOST_AFTER,
        intents: IntentLog | None = None,
    ) -> None:
        super().__init__(
            client,
            store=store,
            cluster=cluster,
            poll=poll,
            on_update=on_update,
            clock=clock,
            ha_followup_timeout=ha_followup_timeout,
            lost_after=lost_after,
        )
        self.limits = limits or Limits()
        self.intents = intents  # automatic moves are written down first (several instances, one cluster)
        self._turn = asyncio.Condition()
        self._active: list[MigrationJob] = []

    # --- public ----------------------------------------------------------------------------------

    def submit(self, move: PlannedMove, options: MoveOptions | None = None, *, actor: str = "user") -> MigrationJob:
        """Queues a move; it starts as soon as the limits allow. Must be called in the event loop."""
        check_actor(actor)
        if move.source == move.target:
            raise UsageError(f"guest {move.vmid} is already on {move.target}")
        busy = self.job_for(move.vmid)
        if busy is not None:
            raise UsageError(f"guest {move.vmid} is already being migrated ({busy.label})")
        job = MigrationJob(
            id=next(self._ids), move=move, options=options or MoveOptions(), actor=actor, queued_at=self.clock()
        )
        self._launch(job, name=f"migrate-{move.vmid}")
        return job

    @property
    def active(self) -> tuple[MigrationJob, ...]:
        return tuple(self._active)

    async def stop(self, job: MigrationJob) -> None:
        """Cancels a queued job, or asks PVE to stop the running task (the job then fails)."""
        if job.state.finished:
            return
        job.stop_requested = True
        if job.state is JobState.QUEUED:
            async with self._turn:
                self._turn.notify_all()
            return
        upid = job.upid or job.ha_upid
        if upid is not None:
            await asyncio.to_thread(tasks.stop_task, self.client, upid)

    async def abandon(self, job: MigrationJob, reason: str, *, state: JobState = JobState.FAILED) -> None:
        """Ends a job at once without asking PVE (its node went offline, so its task can neither
        be read nor stopped; waiting for reads to fail for ``lost_after`` would only delay the news)."""
        if job.state.finished:
            return
        runner = self._runners.get(job.id)
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if not job.state.finished:
            self._finish(job, state, error=reason)
            await self._journal(job, f"{state.value}: {reason}")

    # --- scheduling ------------------------------------------------------------------------------

    def _may_start(self, job: MigrationJob) -> bool:
        """Room cluster-wide and, for automatic moves, on the job's source and target; waiters wake
        in FIFO order, so queued jobs start in submission order whenever their turn allows."""
        if len(self._active) >= self.limits.max_parallel:
            return False
        if job.actor == "user":
            return True
        from_source = sum(1 for other in self._active if other.move.source == job.move.source)
        to_target = sum(1 for other in self._active if other.move.target == job.move.target)
        return from_source < self.limits.max_per_source and to_target < self.limits.max_per_target

    async def _settled(self, job: MigrationJob) -> None:
        if job.intent_id is not None and self.intents is not None:  # finished, not cancelled: close it
            await self.intents.finished(job.intent_id, ok=job.succeeded, detail=job.error or job.exitstatus or "")
        # a cancelled job's intent stays open: the task goes on in the cluster, the next acting instance settles it

    async def _released(self, job: MigrationJob) -> None:
        async with self._turn:
            if job in self._active:
                self._active.remove(job)
            self._turn.notify_all()

    async def _take_turn(self, job: MigrationJob) -> bool:
        """Waits until the limits let the job start (True), or it was cancelled meanwhile (False)."""
        async with self._turn:
            await self._turn.wait_for(lambda: job.stop_requested or self._may_start(job))
            if job.stop_requested:
                self._finish(job, JobState.CANCELLED, error="cancelled before it started")
                return False
            job.state = JobState.STARTING
            job.started_at = self.clock()
            self._active.append(job)
        self._changed(job)
        return True

    # --- one migration ---------------------------------------------------------------------------

    async def _execute(self, job: MigrationJob) -> None:
        if not await self._take_turn(job):
            return
        move = job.move
        guest = guest_of(move)
        try:
            if move.with_local_disks is None:  # a running VM planned without its precondition
                precondition = await asyncio.to_thread(actions.migrate_precondition, self.client, guest, move.target)
                job.move = move = replace(move, with_local_disks=bool(precondition.local_disks))
            if self.intents is not None and job.actor in AUTOMATIC_ACTORS:
                job.intent_id = await self.intents.open(
                    actor=job.actor, action="migrate", vmid=move.vmid, source=move.source, target=move.target
                )
            upid = await self._start_migration(
                guest,
                partial(
                    actions.migrate,
                    self.client,
                    guest,
                    move.target,
                    online=move.online if move.type == "qemu" else None,
                    with_local_disks=bool(move.with_local_disks),
                    bwlimit_kib=job.options.bwlimit_kib,
                    restart=move.restart if move.type == "lxc" else None,
                    restart_timeout=job.options.restart_timeout if move.type == "lxc" else None,
                    target_storage=move.target_storage,
                ),
            )
        except PvetopError as exc:
            await self._refused(job, exc)
            return
        if job.intent_id is not None and self.intents is not None:
            await self.intents.started(job.intent_id, upid)
        if job.stop_requested:  # asked to stop while the request was on its way
            await asyncio.to_thread(tasks.stop_task, self.client, upid)
        await self._started(job, upid, ha_request=tasks.parse_upid(upid).type == "hamigrate")

        def on_main_lines(lines: list[str]) -> None:
            job.progress = tasks.parse_migration_progress(lines)

        await self._follow_through(
            job, upid, partial(self._await_ha_migration, job, guest), on_main_lines=on_main_lines
        )

    async def _start_migration(self, guest: Guest, send: Callable[[], str]) -> str:
        """Sends the migrate POST. An answer that is not PVE's refusal (a timeout, a dropped
        connection, a 5xx) may hide a request that reached the cluster, so the node's task list
        decides: a migration of the guest by this user, running or started since the request was
        sent (it may be over already), is the one started; none means the request did not start
        anything and is sent again (``MIGRATE_ATTEMPTS`` in all)."""
        for attempt in range(1, MIGRATE_ATTEMPTS + 1):
            sent = self.clock()
            try:
                return await asyncio.to_thread(send)
            except (UsageError, ReadOnlyRefused):
                raise
            except ApiError as exc:
                if exc.status < 500:
                    raise  # PVE's own refusal (400 parameters, 403 permissions): nothing started
                unsure: PvetopError = exc
            except PvetopError as exc:
                unsure = exc
            started = await self._started_since(guest, sent - CLOCK_SLACK, unsure)
            if started is not None:
                return started
            if attempt < MIGRATE_ATTEMPTS:
                await asyncio.sleep(self.poll)
        raise unsure

    async def _started_since(self, guest: Guest, since: float, unsure: PvetopError) -> str | None:
        """``started_migration``, its read tried ``MIGRATE_ATTEMPTS`` times: one failed read (a 500
        from a busy node, a dropped connection) must not turn a move that started into a failure.
        When the node's list stays unreadable, the cluster-wide list is looked at once: a request
        that started there is adopted (and so journaled under its UPID) even if its node is down."""
        read = partial(actions.started_migration, self.client, guest, since=since)
        for _ in range(MIGRATE_ATTEMPTS - 1):
            with contextlib.suppress(PvetopError):
                return await asyncio.to_thread(read)
            await asyncio.sleep(self.poll)
        try:
            return await asyncio.to_thread(read)
        except PvetopError as check:
            unread = check
        with contextlib.suppress(PvetopError):  # the node may be down: the cluster's list may show the task
            found = await asyncio.to_thread(partial(read, cluster_wide=True))
            if found is not None:
                return found
        # not found there is no proof that nothing started (a node broadcasts its tasks late): not sent again
        raise PvetopError(
            f"{unsure.message}; the task list of {guest.node} cannot be read either ({unread.message}), "
            "so the migration may have started: check the cluster's tasks"
        )

    async def _await_ha_migration(self, job: MigrationJob, guest: Guest, since: int) -> str:
        """The HA manager's own migration task for the guest, once it has started it."""
        find = partial(actions.find_followup_migration, self.client, guest, since=since)
        refusal = partial(self._ha_refusal, guest, job.move.target, since)
        return await self._await_followup(guest.node, find, what="start the migration", refusal=refusal)

    async def _ha_refusal(self, guest: Guest, target: str, since: int) -> str | None:
        """PVE's CRM drops or refuses some requests without a task; its status tells."""
        try:
            return await asyncio.to_thread(actions.ha_move_refusal, self.client, guest, target, since=since)
        except PvetopError:
            return None  # unreadable now; the next poll (or the timeout) decides

    # --- bookkeeping -----------------------------------------------------------------------------

    def _finish(self, job: MigrationJob, state: JobState, *, error: str | None = None) -> None:
        if job.progress.total_bytes is None and state is JobState.SUCCEEDED:
            job.progress = Progress(finished=True)
        super()._finish(job, state, error=error)

    def _journal_entry(self, job: MigrationJob) -> tuple[str, dict[str, Any]]:
        move = job.move
        params = {
            "source": move.source,
            "target": move.target,
            "type": move.type,
            "name": move.name,
            "online": move.online,
            "restart": move.restart,
            "with_local_disks": bool(move.with_local_disks),
            "target_storage": move.target_storage,
            "bwlimit_kib": job.options.bwlimit_kib,
            "via_ha": job.via_ha,
            "reason": move.reason,
        }
        return "migrate", params
