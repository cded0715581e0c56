"""What the migration executor and the guest lifecycle runner share: a job that runs one PVE task
(or an HA request and the task the HA manager starts for it), following that task to its end, and
the bookkeeping of jobs run as asyncio tasks (updates, journal, internal errors shown on the job).

Every blocking API or store call goes through ``asyncio.to_thread``, so the Textual app (its own
loop) and the CLI (``asyncio.run``) share the runners.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pvetop.errors import PvetopError, UsageError
from pvetop.model import ACTORS
from pvetop.pve import tasks
from pvetop.pve.tasks import TaskStatus

LOST_AFTER = 300.0  # seconds of failing reads (API unreachable) before a job is reported as lost
HA_FOLLOWUP_TIMEOUT = 180.0  # seconds the HA manager gets to start the real task
KEPT_FINISHED_JOBS = 200  # finished jobs remembered for the tasks pane (the journal keeps them all)
KEPT_ALERTS = 50  # a worker's alerts remembered for the screens (the daemon's log has them all)


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


@dataclass(eq=False, kw_only=True)
class TaskJob(ABC):
    """One guest's job and what is known of its task so far (mutated by its runner)."""

    id: int
    actor: str
    queued_at: float
    state: JobState = JobState.QUEUED
    upid: str | None = None  # the guest's own task (qmigrate, qmstart, vzshutdown, ...)
    ha_upid: str | None = None  # the HA request's task when the HA manager does the work
    log: list[str] = field(default_factory=list)  # every task line seen, the HA request's first
    exitstatus: str | None = None
    error: str | None = None  # why it failed, in PVE's words (refusal text or the log's error line)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    @abstractmethod
    def vmid(self) -> int: ...

    @property
    @abstractmethod
    def label(self) -> str: ...

    @property
    def via_ha(self) -> bool:
        return self.ha_upid is not None

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.SUCCEEDED

    def duration(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at

    def task_dict(self) -> dict[str, Any]:
        """The task's part of the job's ``--json`` output."""
        return {
            "state": self.state.value,
            "upid": self.upid,
            "ha_upid": self.ha_upid,
            "via_ha": self.via_ha,
            "exitstatus": self.exitstatus,
            "error": self.error,
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


class TaskLost(PvetopError):
    """The task could not be read for too long; it may still run on the cluster."""


class Outage:
    """Tolerates failing reads for ``seconds`` before giving up on a task, measured on ``clock``:
    the runner's, the cluster's time (a test's simulator steps its own clock, and an outage of
    its nodes lasts simulated seconds, not real ones)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.since: float | None = None

    def failed(self, message: str) -> None:
        now = self.clock()
        if self.since is None:
            self.since = now
        elif now - self.since >= self.seconds:
            raise TaskLost(message)

    def ended(self) -> None:
        self.since = None


async def follow_task(
    client: Any,
    upid: str,
    *,
    poll: float,
    lost_after: float,
    on_lines: Callable[[list[str]], None],
    clock: Callable[[], float] = time.monotonic,
) -> TaskStatus:
    """Polls one task until it stops (status + new log lines: 2 requests per poll) and returns its
    final status; ``on_lines(lines)`` gets every line so far whenever new ones came. Raises
    ``TaskLost`` after ``lost_after`` seconds of failing reads on ``clock`` (the task may still run)."""
    lines: list[str] = []
    outage = Outage(lost_after, clock)
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


def check_actor(actor: str) -> None:
    if actor not in ACTORS:
        raise UsageError(f"actor {actor!r} is not one of {', '.join(ACTORS)}")


J = TypeVar("J", bound=TaskJob)


class JobRunner(ABC, Generic[J]):
    """Runs each submitted job as an asyncio task; ``on_update(job)`` is called in the event loop
    after every change of a job (state, log, progress) — the UI posts a message from it, the CLI
    prints a line. ``poll`` is the seconds between two reads of a running task."""

    def __init__(
        self,
        client: Any,
        *,
        store: Any = None,
        cluster: str = "",
        poll: float = 1.0,
        on_update: Callable[[J], None] | None = None,
        clock: Callable[[], float] = time.time,
        ha_followup_timeout: float = HA_FOLLOWUP_TIMEOUT,
        lost_after: float = LOST_AFTER,
    ) -> None:
        self.client = client
        self.store = store
        self.cluster = cluster
        self.poll = poll
        self.on_update = on_update
        self.clock = clock
        self.ha_followup_timeout = ha_followup_timeout
        self.lost_after = lost_after
        self.jobs: list[J] = []
        self._ids = itertools.count(1)
        self._runners: dict[int, asyncio.Task[None]] = {}

    def job_for(self, vmid: int) -> J | None:
        """The unfinished job of guest ``vmid``, if any."""
        return next((job for job in self.jobs if job.vmid == vmid and not job.state.finished), None)

    @property
    def busy(self) -> bool:
        return any(not job.state.finished for job in self.jobs)

    async def wait(self, jobs: Iterable[J] | None = None) -> list[J]:
        """Waits until the given jobs (default: all submitted so far) have finished."""
        chosen = list(self.jobs if jobs is None else jobs)
        runners = [self._runners[job.id] for job in chosen if job.id in self._runners]
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)
        return chosen

    async def aclose(self) -> None:
        """Stops following (the tasks go on in the cluster): for an app that is quitting."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    # --- for the runners -------------------------------------------------------------------------

    def _launch(self, job: J, name: str) -> None:
        """Adds the job and runs it; must be called in the event loop."""
        finished = [old for old in self.jobs if old.state.finished]
        if len(finished) > KEPT_FINISHED_JOBS:
            dropped = {id(old) for old in finished[: len(finished) - KEPT_FINISHED_JOBS]}
            self.jobs = [old for old in self.jobs if id(old) not in dropped]
        self.jobs.append(job)
        self._runners[job.id] = asyncio.get_running_loop().create_task(self._run(job), name=name)
        self._changed(job)

    async def _run(self, job: J) -> None:
        try:
            try:
                await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not go unseen nor take other jobs down: the job shows it
                self._finish(job, JobState.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")
            await self._settled(job)
        finally:
            await self._released(job)
            self._runners.pop(job.id, None)

    @abstractmethod
    async def _execute(self, job: J) -> None: ...

    async def _settled(self, job: J) -> None:
        """After the job has finished (not when it was cancelled)."""

    async def _released(self, job: J) -> None:
        """After the job has finished or was cancelled."""

    async def _refused(self, job: J, exc: PvetopError) -> None:
        await self._journal(job, f"refused: {exc.message}")
        self._finish(job, JobState.FAILED, error=exc.message)

    async def _started(self, job: J, upid: str, *, ha_request: bool) -> None:
        job.state = JobState.RUNNING
        if ha_request:
            job.ha_upid = upid
        else:
            job.upid = upid
        await self._journal(job, "started")
        self._changed(job)

    async def _follow_through(
        self,
        job: J,
        upid: str,
        followup: Callable[[int], Awaitable[str]] | None = None,
        *,
        on_main_lines: Callable[[list[str]], None] | None = None,
    ) -> None:
        """Follows the started task ``upid`` to its end and finishes the job with its result. When
        it is an HA request that succeeded, ``followup(since)`` finds the task the HA manager
        started for it, which is followed in turn (no ``followup``: the request's result is the job's)."""
        try:
            status = await self._follow(job, upid, on_lines=None if job.via_ha else on_main_lines)
            if job.via_ha and status.succeeded and followup is not None:
                job.upid = await followup(tasks.parse_upid(upid).starttime)
                self._changed(job)
                status = await self._follow(job, job.upid, on_lines=on_main_lines)
        except TaskLost as exc:
            self._finish(job, JobState.FAILED, error=exc.message)
            await self._journal(job, f"failed: {exc.message}")
            return
        job.exitstatus = status.exitstatus
        if status.succeeded:
            self._finish(job, JobState.SUCCEEDED)
            await self._journal(job, "ok")
            return
        reason = failure_line(job.log)
        text = status.exitstatus or "failed"
        self._finish(job, JobState.FAILED, error=f"{text}: {reason}" if reason and reason != text else text)
        await self._journal(job, f"failed: {job.error}")

    async def _follow(self, job: J, upid: str, *, on_lines: Callable[[list[str]], None] | None = None) -> TaskStatus:
        """Polls one task until it stops, appending its new log lines to the job."""
        seen = 0

        def add_lines(lines: list[str]) -> None:
            nonlocal seen
            job.log.extend(lines[seen:])
            seen = len(lines)
            if on_lines is not None:
                on_lines(lines)
            self._changed(job)

        return await follow_task(
            self.client, upid, poll=self.poll, lost_after=self.lost_after, on_lines=add_lines, clock=self.clock
        )

    async def _await_followup(
        self,
        node: str,
        find: Callable[[], str | None],
        *,
        what: str,
        refusal: Callable[[], Awaitable[str | None]] | None = None,
    ) -> str:
        """The task the HA manager starts for a request, once it has (``find()`` lists ``node``'s
        tasks); ``refusal()`` tells when PVE's CRM dropped the request without a task. The wait is
        measured on the runner's clock, the cluster's time: the HA manager's rounds run on it."""
        deadline = self.clock() + self.ha_followup_timeout
        outage = Outage(self.lost_after, self.clock)
        while True:
            try:
                upid = await asyncio.to_thread(find)
                outage.ended()
            except PvetopError as exc:
                outage.failed(f"cannot list the tasks of {node} ({exc.message})")
                upid = None
            if upid is not None:
                return upid
            refused = None if refusal is None else await refusal()
            if refused is not None:
                raise TaskLost(refused)
            if self.clock() >= deadline:
                raise TaskLost(
                    f"the HA manager did not {what} within {self.ha_followup_timeout:g} s "
                    "(check the HA state of the guest)"
                )
            await asyncio.sleep(self.poll)

    def _finish(self, job: J, state: JobState, *, error: str | None = None) -> None:
        job.state = state
        job.error = error
        job.finished_at = self.clock()
        self._changed(job)

    def _changed(self, job: J) -> None:
        if self.on_update is not None:
            self.on_update(job)

    @abstractmethod
    def _journal_entry(self, job: J) -> tuple[str, dict[str, Any]]:
        """The journal's action and parameters for the job."""

    async def _journal(self, job: J, result: str) -> None:
        if self.store is None or not self.cluster:
            return
        action, params = self._journal_entry(job)
        await asyncio.to_thread(
            self.store.journal,
            self.cluster,
            job.actor,
            action,
            f"guest/{job.vmid}",
            params,
            result,
            job.upid or job.ha_upid,
        )
