"""Guest lifecycle (start, shutdown, stop, reboot): one API call per guest, followed to its end.

PVE forwards start, shutdown and stop of an HA-managed guest to the HA manager: the call returns
a short ``hastart``/``hastop`` task, and the node's LRM runs the real ``qm*``/``vz*`` task a few
seconds later. A job follows the request task and then, when the guest's state has to change,
the LRM's task — so "done" means the guest really is up or down. Tasks are followed with the
migration engine's ``follow_task``; every start and result is journaled under the job's actor.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pvetop.engine.migrations import HA_FOLLOWUP_TIMEOUT, LOST_AFTER, JobState, TaskLost, failure_line, follow_task
from pvetop.errors import PvetopError, UsageError
from pvetop.model import ACTORS, Guest
from pvetop.pve import actions, tasks
from pvetop.pve.tasks import TaskStatus

DEFAULT_SHUTDOWN_TIMEOUT = 60  # seconds, PVE's default for an HA shutdown request too
PAST_TENSE = {"start": "started", "shutdown": "shut down", "stop": "stopped", "reboot": "rebooted"}


@dataclass(eq=False)
class LifecycleJob:
    """One start/shutdown/stop/reboot of one guest and what is known of it so far."""

    id: int
    guest: Guest
    action: str
    actor: str
    queued_at: float
    timeout: int | None = None
    force_stop: bool = False
    state: JobState = JobState.STARTING
    upid: str | None = None  # the guest's own task (qmstart, vzshutdown, ...)
    ha_upid: str | None = None  # the hastart/hastop request when the HA manager does it
    log: list[str] = field(default_factory=list)
    exitstatus: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def vmid(self) -> int:
        return self.guest.vmid

    @property
    def via_ha(self) -> bool:
        return self.ha_upid is not None

    @property
    def label(self) -> str:
        name = f" ({self.guest.name})" if self.guest.name else ""
        return f"{self.action} {self.vmid}{name}"

    @property
    def status_text(self) -> str:
        """What the tasks pane and the CLI say about it."""
        if self.state is JobState.SUCCEEDED:
            return PAST_TENSE[self.action] + (" via HA manager" if self.via_ha else "")
        if self.state is JobState.FAILED:
            return f"failed: {self.error}"
        if self.via_ha and self.upid is None:
            return "requested from the HA manager"
        return "running"

    def duration(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at

    def as_dict(self) -> dict[str, Any]:
        """The job for ``--json`` output."""
        return {
            "vmid": self.vmid,
            "name": self.guest.name,
            "type": self.guest.type,
            "node": self.guest.node,
            "action": self.action,
            "state": self.state.value,
            "upid": self.upid,
            "ha_upid": self.ha_upid,
            "via_ha": self.via_ha,
            "exitstatus": self.exitstatus,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def state_changes(guest: Guest, action: str) -> bool:
    """Whether the action changes whether the guest runs (else the HA manager has nothing to do)."""
    if action == "start":
        return not guest.running
    return guest.running


LifecycleCallback = Callable[[LifecycleJob], None]


class LifecycleRunner:
    """Starts lifecycle actions and follows them; ``on_update(job)`` after every change."""

    def __init__(
        self,
        client: Any,
        *,
        store: Any = None,
        cluster: str = "",
        poll: float = 1.0,
        on_update: LifecycleCallback | None = None,
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
        self.jobs: list[LifecycleJob] = []
        self._ids = itertools.count(1)
        self._runners: dict[int, asyncio.Task] = {}

    def submit(
        self,
        guest: Guest,
        action: str,
        *,
        timeout: int | None = None,
        force_stop: bool = False,
        actor: str = "user",
    ) -> LifecycleJob:
        """Starts the action now (PVE queues nothing here); must be called in the event loop."""
        if action not in actions.GUEST_ACTIONS:
            raise UsageError(f"unknown guest action {action!r}", hint=f"one of {', '.join(actions.GUEST_ACTIONS)}")
        if actor not in ACTORS:
            raise UsageError(f"actor {actor!r} is not one of {', '.join(ACTORS)}")
        busy = self.job_for(guest.vmid)
        if busy is not None:
            raise UsageError(f"guest {guest.vmid} is busy: {busy.label} has not finished")
        job = LifecycleJob(
            id=next(self._ids),
            guest=guest,
            action=action,
            actor=actor,
            queued_at=self.clock(),
            timeout=timeout,
            force_stop=force_stop,
        )
        self.jobs.append(job)
        self._runners[job.id] = asyncio.get_running_loop().create_task(self._run(job), name=f"{action}-{guest.vmid}")
        self._changed(job)
        return job

    def job_for(self, vmid: int) -> LifecycleJob | None:
        return next((job for job in self.jobs if job.vmid == vmid and not job.state.finished), None)

    async def wait(self, jobs: Iterable[LifecycleJob] | None = None) -> list[LifecycleJob]:
        chosen = list(self.jobs if jobs is None else jobs)
        runners = [self._runners[job.id] for job in chosen if job.id in self._runners]
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)
        return chosen

    async def aclose(self) -> None:
        """Stops following (the tasks go on in the cluster)."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    # --- one job ---------------------------------------------------------------------------------

    async def _run(self, job: LifecycleJob) -> None:
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not go unseen: the job shows it
            self._finish(job, JobState.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._runners.pop(job.id, None)

    async def _execute(self, job: LifecycleJob) -> None:
        guest = job.guest
        job.started_at = self.clock()
        try:
            upid = await asyncio.to_thread(
                partial(
                    actions.guest_power, self.client, guest, job.action, timeout=job.timeout, force_stop=job.force_stop
                )
            )
        except PvetopError as exc:
            await self._journal(job, f"refused: {exc.message}")
            self._finish(job, JobState.FAILED, error=exc.message)
            return
        job.state = JobState.RUNNING
        via_ha = tasks.parse_upid(upid).type in actions.HA_REQUEST_TASKS
        if via_ha:
            job.ha_upid = upid
        else:
            job.upid = upid
        await self._journal(job, "started")
        self._changed(job)
        try:
            status = await self._follow(job, upid)
            if via_ha and status.succeeded and state_changes(guest, job.action):
                job.upid = await self._await_lrm_task(job, since=tasks.parse_upid(upid).starttime)
                self._changed(job)
                status = await self._follow(job, job.upid)
        except TaskLost as exc:
            self._finish(job, JobState.FAILED, error=exc.message)
            await self._journal(job, f"failed: {exc.message}")
            return
        job.exitstatus = status.exitstatus
        if status.succeeded:
            self._finish(job, JobState.SUCCEEDED)
            await self._journal(job, "ok")
        else:
            reason = failure_line(job.log)
            text = status.exitstatus or "failed"
            self._finish(job, JobState.FAILED, error=f"{text}: {reason}" if reason and reason != text else text)
            await self._journal(job, f"failed: {job.error}")

    async def _follow(self, job: LifecycleJob, upid: str) -> TaskStatus:
        seen = 0

        def on_lines(lines: list[str]) -> None:
            nonlocal seen
            job.log.extend(lines[seen:])
            seen = len(lines)
            self._changed(job)

        return await follow_task(self.client, upid, poll=self.poll, lost_after=self.lost_after, on_lines=on_lines)

    async def _await_lrm_task(self, job: LifecycleJob, *, since: int) -> str:
        """The task the HA manager's LRM runs for the request, once it has started it."""
        guest = job.guest
        types = actions.lifecycle_task_types(guest, job.action)
        deadline = time.monotonic() + self.ha_followup_timeout
        while True:
            try:
                upid = await asyncio.to_thread(actions.find_followup_task, self.client, guest, types, since=since)
            except PvetopError:
                upid = None  # a hiccup; the deadline below still bounds the wait
            if upid is not None:
                return upid
            if time.monotonic() >= deadline:
                raise TaskLost(
                    f"the HA manager did not {job.action} the guest within {self.ha_followup_timeout:g} s "
                    "(check its HA state)"
                )
            await asyncio.sleep(self.poll)

    def _finish(self, job: LifecycleJob, state: JobState, *, error: str | None = None) -> None:
        job.state = state
        job.error = error
        job.finished_at = self.clock()
        self._changed(job)

    def _changed(self, job: LifecycleJob) -> None:
        if self.on_update is not None:
            self.on_update(job)

    async def _journal(self, job: LifecycleJob, result: str) -> None:
        if self.store is None or not self.cluster:
            return
        params = {"node": job.guest.node, "type": job.guest.type, "name": job.guest.name, "via_ha": job.via_ha}
        if job.timeout is not None:
            params["timeout"] = job.timeout
        if job.force_stop:
            params["force_stop"] = True
        await asyncio.to_thread(
            self.store.journal,
            self.cluster,
            job.actor,
            job.action,
            f"guest/{job.vmid}",
            params,
            result,
            job.upid or job.ha_upid,
        )
