"""Runs planned migrations: a queue with concurrency limits, live task tracking, a journal.

The executor is plain asyncio so the Textual app (its own loop) and the CLI (``asyncio.run``)
share it; every blocking API or store call goes through ``asyncio.to_thread``. A job starts when
fewer than ``Limits.max_parallel`` migrations run cluster-wide and, for automatic moves (balancer,
power policy), fewer than ``Limits.max_per_source`` leave its source node and fewer than
``Limits.max_per_target`` arrive on its target — a user's evacuation
empties one node, so only the cluster-wide limit binds it; queued jobs start in submission order
as soon as their turn allows. Each running job polls its task (status + new log lines: 2 requests per poll)
and exposes the progress parsed from the log. HA-managed guests migrate through PVE's HA
manager: the migrate call returns a ``hamigrate`` task; once it is done the executor finds the
``qmigrate``/``vzmigrate`` task the manager started and follows that one.

Every start, refusal and result is journaled (``store.journal``) under the job's actor.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Any

from pvetop.engine.intents import AUTOMATIC_ACTORS, IntentLog
from pvetop.errors import ApiError, PvetopError, ReadOnlyRefused, UsageError
from pvetop.model import ACTORS, Guest
from pvetop.policy.placement import PlannedMove
from pvetop.pve import actions, tasks
from pvetop.pve.tasks import Progress, TaskStatus

SETTING_MAX_PARALLEL = "migrations.max_parallel"
SETTING_MAX_PER_SOURCE = "migrations.max_per_source"
SETTING_MAX_PER_TARGET = "migrations.max_per_target"
DEFAULT_MAX_PARALLEL = 2  # at most 2 migrations cluster-wide at once
DEFAULT_MAX_PER_SOURCE = 1  # one automatic move leaving a node at a time
DEFAULT_MAX_PER_TARGET = 1  # and one arriving on a node at a time
LOST_AFTER = 300.0  # seconds of failing reads (API unreachable) before a job is reported as lost
HA_FOLLOWUP_TIMEOUT = 180.0  # seconds the HA manager gets to start the real migration
MIGRATE_ATTEMPTS = 3  # a migrate POST whose task list shows it did not start is sent at most this often
KEPT_FINISHED_JOBS = 200  # finished jobs remembered for the tasks pane (the journal keeps them all)


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


class JobState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(eq=False)
class MigrationJob:
    """One planned move and everything known about its execution so far (mutated by the executor)."""

    id: int
    move: PlannedMove
    options: MoveOptions
    actor: str
    queued_at: float
    state: JobState = JobState.QUEUED
    upid: str | None = None  # the qmigrate/vzmigrate task
    ha_upid: str | None = None  # the hamigrate task when the HA manager moves the guest
    progress: Progress = field(default_factory=Progress)
    log: list[str] = field(default_factory=list)  # every task line seen, hamigrate's first
    exitstatus: str | None = None
    error: str | None = None  # why it failed, in PVE's words (refusal text or the log's error line)
    started_at: float | None = None
    finished_at: float | None = None
    stop_requested: bool = False
    intent_id: int | None = None  # an automatic move's intent (see engine/intents.py)

    @property
    def vmid(self) -> int:
        return self.move.vmid

    @property
    def via_ha(self) -> bool:
        return self.ha_upid is not None

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.SUCCEEDED

    @property
    def label(self) -> str:
        name = f" ({self.move.name})" if self.move.name else ""
        return f"{self.move.vmid}{name} {self.move.source} → {self.move.target}"

    def duration(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at

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
            "state": self.state.value,
            "upid": self.upid,
            "ha_upid": self.ha_upid,
            "via_ha": self.via_ha,
            "exitstatus": self.exitstatus,
            "error": self.error,
            "transferred_bytes": self.progress.transferred_bytes,
            "total_bytes": self.progress.total_bytes,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


NO_CONTENT = "no content"
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
_PROBLEMS_SUMMARY = "ERROR: migration finished with problems"


def failure_line(lines: Iterable[str]) -> str | None:
    """The log line that says why a task failed: the last ``ERROR:`` line, without its time stamp.

    PVE closes a migration that failed while copying the RAM with ``ERROR: migration finished with
    problems (duration ...)`` (AbstractMigrate.pm); the error before that one says why."""
    found = None
    for line in lines:
        text = _STAMP.sub("", line.strip())
        if "ERROR" in text and not text.startswith("TASK ERROR"):
            if found is None or not text.startswith(_PROBLEMS_SUMMARY):
                found = text
    return found


def real_lines(new: list[str], *, seen: int) -> list[str]:
    """New log lines without PVE's placeholder for a log that has no line yet (``no content``),
    which would otherwise count as line 1 and hide the real first line."""
    return [] if seen == 0 and new == [NO_CONTENT] else new


def guest_of(move: PlannedMove) -> Guest:
    """The little of a guest the migrate endpoint needs: where it is, what it is, whether it runs."""
    return Guest(
        vmid=move.vmid,
        type=move.type,
        node=move.source,
        name=move.name,
        status="running" if move.online or move.restart else "stopped",
    )


class TaskLost(PvetopError):
    """The task could not be read for too long; it may still run on the cluster."""


class _Outage:
    """Tolerates failing reads for ``seconds`` (real time) before giving up on a task."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.since: float | None = None

    def failed(self, message: str) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        elif now - self.since >= self.seconds:
            raise TaskLost(message)

    def ended(self) -> None:
        self.since = None


async def follow_task(
    client: Any, upid: str, *, poll: float, lost_after: float, on_lines: Callable[[list[str]], None]
) -> TaskStatus:
    """Polls one task until it stops (status + new log lines: 2 requests per poll) and returns its
    final status; ``on_lines(lines)`` gets every line so far whenever new ones came. Raises
    ``TaskLost`` after ``lost_after`` seconds of failing reads (the task may still run)."""
    lines: list[str] = []
    outage = _Outage(lost_after)
    while True:
        try:
            status = await asyncio.to_thread(tasks.task_status, client, upid)
            new = await asyncio.to_thread(tasks.task_log, client, upid, start=len(lines))
        except PvetopError as exc:  # the network or a node hiccuped; the task runs on regardless
            outage.failed(f"lost track of task {upid} ({exc.message}); it may still be running")
            await asyncio.sleep(poll)
            continue
        outage.ended()
        new = real_lines(new, seen=len(lines))
        if new:
            lines.extend(new)
            on_lines(lines)
        if not status.running:
            return status
        await asyncio.sleep(poll)


UpdateCallback = Callable[[MigrationJob], None]


class MigrationExecutor:
    """Queues planned moves and runs them through ``pve.actions`` within ``limits``.

    ``on_update(job)`` is called in the event loop after every change of a job (state, progress,
    log) — the UI posts a message from it, the CLI prints a line. ``poll`` is the seconds between
    two reads of a running task.
    """

    def __init__(
        self,
        client: Any,
        *,
        store: Any = None,
        cluster: str = "",
        limits: Limits | None = None,
        poll: float = 1.0,
        on_update: UpdateCallback | None = None,
        clock: Callable[[], float] = time.time,
        ha_followup_timeout: float = HA_FOLLOWUP_TIMEOUT,
        lost_after: float = LOST_AFTER,
        intents: IntentLog | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.cluster = cluster
        self.limits = limits or Limits()
        self.poll = poll
        self.on_update = on_update
        self.clock = clock
        self.ha_followup_timeout = ha_followup_timeout
        self.lost_after = lost_after
        self.intents = intents  # automatic moves are written down first (several instances, one cluster)
        self.jobs: list[MigrationJob] = []
        self._ids = itertools.count(1)
        self._turn = asyncio.Condition()
        self._active: list[MigrationJob] = []
        self._runners: dict[int, asyncio.Task] = {}

    # --- public ----------------------------------------------------------------------------------

    def submit(self, move: PlannedMove, options: MoveOptions | None = None, *, actor: str = "user") -> MigrationJob:
        """Queues a move; it starts as soon as the limits allow. Must be called in the event loop."""
        if actor not in ACTORS:
            raise UsageError(f"actor {actor!r} is not one of {', '.join(ACTORS)}")
        if move.source == move.target:
            raise UsageError(f"guest {move.vmid} is already on {move.target}")
        busy = self.job_for(move.vmid)
        if busy is not None:
            raise UsageError(f"guest {move.vmid} is already being migrated ({busy.label})")
        job = MigrationJob(
            id=next(self._ids), move=move, options=options or MoveOptions(), actor=actor, queued_at=self.clock()
        )
        self._forget_old_jobs()
        self.jobs.append(job)
        self._runners[job.id] = asyncio.get_running_loop().create_task(self._run(job), name=f"migrate-{move.vmid}")
        self._changed(job)
        return job

    def job_for(self, vmid: int) -> MigrationJob | None:
        """The unfinished job moving ``vmid``, if any."""
        return next((job for job in self.jobs if job.vmid == vmid and not job.state.finished), None)

    @property
    def active(self) -> tuple[MigrationJob, ...]:
        return tuple(self._active)

    @property
    def busy(self) -> bool:
        return any(not job.state.finished for job in self.jobs)

    async def wait(self, jobs: Iterable[MigrationJob] | None = None) -> list[MigrationJob]:
        """Waits until the given jobs (default: all submitted so far) have finished."""
        chosen = list(self.jobs if jobs is None else jobs)
        runners = [self._runners[job.id] for job in chosen if job.id in self._runners]
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)
        return chosen

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

    async def aclose(self) -> None:
        """Stops tracking (tasks keep running on the cluster): for an app that is quitting."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    def _forget_old_jobs(self) -> None:
        finished = [job for job in self.jobs if job.state.finished]
        if len(finished) > KEPT_FINISHED_JOBS:
            dropped = {id(job) for job in finished[: len(finished) - KEPT_FINISHED_JOBS]}
            self.jobs = [job for job in self.jobs if id(job) not in dropped]

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

    async def _run(self, job: MigrationJob) -> None:
        try:
            try:
                if await self._take_turn(job):
                    await self._execute(job)
            except asyncio.CancelledError:
                raise  # an intent stays open: the task goes on in the cluster, the next acting instance settles it
            except Exception as exc:  # a bug must not take the queue down: the job shows it
                self._finish(job, JobState.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")
            if job.intent_id is not None and self.intents is not None:  # finished, not cancelled: close it
                await self.intents.finished(job.intent_id, ok=job.succeeded, detail=job.error or job.exitstatus or "")
        finally:
            async with self._turn:
                if job in self._active:
                    self._active.remove(job)
                self._turn.notify_all()
            self._runners.pop(job.id, None)

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
                ),
            )
        except PvetopError as exc:
            await self._journal(job, f"refused: {exc.message}")
            self._finish(job, JobState.FAILED, error=exc.message)
            return
        job.state = JobState.RUNNING
        if job.intent_id is not None and self.intents is not None:
            await self.intents.started(job.intent_id, upid)
        if tasks.parse_upid(upid).type == "hamigrate":
            job.ha_upid = upid
        else:
            job.upid = upid
        if job.stop_requested:  # asked to stop while the request was on its way
            await asyncio.to_thread(tasks.stop_task, self.client, upid)
        await self._journal(job, "started")
        self._changed(job)
        main_upid = upid
        try:
            if job.via_ha:
                ha_status = await self._follow(job, upid, main=False)
                if ha_status.failed:
                    self._fail_from(job, ha_status, [])
                    await self._journal(job, f"failed: {job.error}")
                    return
                main_upid = job.upid = await self._await_followup(job, guest, since=tasks.parse_upid(upid).starttime)
                self._changed(job)
            status = await self._follow(job, main_upid, main=True)
        except TaskLost as exc:
            self._finish(job, JobState.FAILED, error=exc.message)
            await self._journal(job, f"failed: {exc.message}")
            return
        if status.succeeded:
            job.exitstatus = status.exitstatus
            self._finish(job, JobState.SUCCEEDED)
            await self._journal(job, "ok")
        else:
            self._fail_from(job, status, job.log)
            await self._journal(job, f"failed: {job.error}")

    async def _start_migration(self, guest: Guest, send: Callable[[], str]) -> str:
        """Sends the migrate POST. An answer that is not PVE's refusal (a timeout, a dropped
        connection, a 5xx) may hide a request that reached the cluster, so the node's task list
        decides: a running migration of the guest by this user is the one started; none means the
        request did not start anything and is sent again (``MIGRATE_ATTEMPTS`` in all)."""
        for attempt in range(1, MIGRATE_ATTEMPTS + 1):
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
            try:
                started = await asyncio.to_thread(actions.running_migration, self.client, guest)
            except PvetopError as check:
                raise PvetopError(
                    f"{unsure.message}; the task list of {guest.node} cannot be read either ({check.message}), "
                    "so the migration may have started: check the cluster's tasks"
                ) from None
            if started is not None:
                return started
            if attempt < MIGRATE_ATTEMPTS:
                await asyncio.sleep(self.poll)
        raise unsure

    async def _follow(self, job: MigrationJob, upid: str, *, main: bool) -> TaskStatus:
        """Polls one task until it stops, appending its new log lines to the job."""
        seen = 0

        def on_lines(lines: list[str]) -> None:
            nonlocal seen
            job.log.extend(lines[seen:])
            seen = len(lines)
            if main:
                job.progress = tasks.parse_migration_progress(lines)
            self._changed(job)

        return await follow_task(self.client, upid, poll=self.poll, lost_after=self.lost_after, on_lines=on_lines)

    async def _await_followup(self, job: MigrationJob, guest: Guest, *, since: int) -> str:
        """The HA manager's own migration task for the guest, once it has started it."""
        deadline = time.monotonic() + self.ha_followup_timeout
        outage = _Outage(self.lost_after)
        while True:
            try:
                upid = await asyncio.to_thread(actions.find_followup_migration, self.client, guest, since=since)
                outage.ended()
            except PvetopError as exc:
                outage.failed(f"cannot list the tasks of {guest.node} ({exc.message})")
                upid = None
            if upid is not None:
                return upid
            refusal = await self._ha_refusal(guest, job.move.target, since)
            if refusal is not None:
                raise TaskLost(refusal)
            if time.monotonic() >= deadline:
                raise TaskLost(
                    f"the HA manager did not start the migration within {self.ha_followup_timeout:g} s "
                    "(check the HA state of the guest)"
                )
            await asyncio.sleep(self.poll)

    async def _ha_refusal(self, guest: Guest, target: str, since: int) -> str | None:
        """PVE's CRM drops or refuses some requests without a task; its status tells."""
        try:
            return await asyncio.to_thread(actions.ha_move_refusal, self.client, guest, target, since=since)
        except PvetopError:
            return None  # unreadable now; the next poll (or the timeout) decides

    # --- bookkeeping -----------------------------------------------------------------------------

    def _fail_from(self, job: MigrationJob, status: TaskStatus, lines: list[str]) -> None:
        reason = failure_line(lines or job.log)
        job.exitstatus = status.exitstatus
        text = status.exitstatus or "failed"
        self._finish(job, JobState.FAILED, error=f"{text}: {reason}" if reason and reason != text else text)

    def _finish(self, job: MigrationJob, state: JobState, *, error: str | None = None) -> None:
        job.state = state
        job.error = error
        job.finished_at = self.clock()
        if job.progress.total_bytes is None and state is JobState.SUCCEEDED:
            job.progress = Progress(finished=True)
        self._changed(job)

    def _changed(self, job: MigrationJob) -> None:
        if self.on_update is not None:
            self.on_update(job)

    async def _journal(self, job: MigrationJob, result: str) -> None:
        if self.store is None or not self.cluster:
            return
        move = job.move
        params = {
            "source": move.source,
            "target": move.target,
            "type": move.type,
            "name": move.name,
            "online": move.online,
            "restart": move.restart,
            "with_local_disks": bool(move.with_local_disks),
            "bwlimit_kib": job.options.bwlimit_kib,
            "via_ha": job.via_ha,
            "reason": move.reason,
        }
        await asyncio.to_thread(
            self.store.journal,
            self.cluster,
            job.actor,
            "migrate",
            f"guest/{move.vmid}",
            params,
            result,
            job.upid or job.ha_upid,
        )
