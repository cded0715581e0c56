"""Guest lifecycle (start, shutdown, stop, reboot): one API call per guest, followed to its end.

PVE forwards start, shutdown and stop of an HA-managed guest to the HA manager: the call returns
a short ``hastart``/``hastop`` task, and the node's LRM runs the real ``qm*``/``vz*`` task a few
seconds later. A job follows the request task and then, when the guest's state has to change,
the LRM's task — so "done" means the guest really is up or down. Tasks are followed with the
migration engine's ``follow_task``; every start and result is journaled under the job's actor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

from pvetop.engine.jobs import JobRunner, JobState, TaskJob, check_actor
from pvetop.errors import PvetopError, UsageError
from pvetop.model import Guest
from pvetop.pve import actions, tasks

DEFAULT_SHUTDOWN_TIMEOUT = 60  # seconds, PVE's default for an HA shutdown request too
PAST_TENSE = {"start": "started", "shutdown": "shut down", "stop": "stopped", "reboot": "rebooted"}


@dataclass(eq=False, kw_only=True)
class LifecycleJob(TaskJob):
    """One start/shutdown/stop/reboot of one guest and what is known of it so far."""

    guest: Guest
    action: str
    timeout: int | None = None
    force_stop: bool = False
    state: JobState = JobState.STARTING  # PVE queues nothing: the call goes out at once

    @property
    def vmid(self) -> int:
        return self.guest.vmid

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

    def as_dict(self) -> dict[str, Any]:
        """The job for ``--json`` output."""
        return {
            "vmid": self.vmid,
            "name": self.guest.name,
            "type": self.guest.type,
            "node": self.guest.node,
            "action": self.action,
            **self.task_dict(),
        }


def state_changes(guest: Guest, action: str) -> bool:
    """Whether the action changes whether the guest runs (else the HA manager has nothing to do)."""
    if action == "start":
        return not guest.running
    return guest.running


class LifecycleRunner(JobRunner[LifecycleJob]):
    """Starts lifecycle actions and follows them; ``on_update(job)`` after every change."""

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
        check_actor(actor)
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
        self._launch(job, name=f"{action}-{guest.vmid}")
        return job

    # --- one job ---------------------------------------------------------------------------------

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
            await self._refused(job, exc)
            return
        await self._started(job, upid, ha_request=tasks.parse_upid(upid).type in actions.HA_REQUEST_TASKS)
        followup = partial(self._await_lrm_task, job) if state_changes(guest, job.action) else None
        await self._follow_through(job, upid, followup)

    async def _await_lrm_task(self, job: LifecycleJob, since: int) -> str:
        """The task the HA manager's LRM runs for the request, once it has started it."""
        guest = job.guest
        types = actions.lifecycle_task_types(guest, job.action)
        find = partial(actions.find_followup_task, self.client, guest, types, since=since)
        return await self._await_followup(guest.node, find, what=f"{job.action} the guest")

    def _journal_entry(self, job: LifecycleJob) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {
            "node": job.guest.node,
            "type": job.guest.type,
            "name": job.guest.name,
            "via_ha": job.via_ha,
        }
        if job.timeout is not None:
            params["timeout"] = job.timeout
        if job.force_stop:
            params["force_stop"] = True
        return job.action, params
