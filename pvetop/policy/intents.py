"""Settling the automatic actions an instance wrote down but never saw through.

An instance writes an intent before each automatic API call and closes it when the task ends. If
it dies in between, the intent stays open, and the instance that takes over must find out what
became of it before planning anything: the request may never have left, or it may have reached
the cluster (a migration now running or finished). Repeating such a move would move the guest
twice; forgetting it would leave the new instance planning on a cluster that is still changing.
Pure: the caller passes the cluster's task list, where guests and nodes are, and the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

MIGRATE_TASK_TYPES = frozenset({"qmigrate", "vzmigrate", "hamigrate"})
# a task may carry a start time a little before the intent's own clock reading (clock skew)
START_SLACK = 30.0
# an intent younger than this with no task yet may still have its request on the way
DEFAULT_GRACE = 120.0

Outcome = Literal["follow", "done", "failed", "abandoned", "wait"]


@dataclass(frozen=True, slots=True)
class PendingIntent:
    """An open intent, as the store keeps it."""

    id: int
    action: str  # "migrate", "power_off" or "wake"
    vmid: int | None
    source: str
    target: str
    created_at: float
    upid: str | None = None


@dataclass(frozen=True, slots=True)
class TaskSeen:
    """One entry of the cluster's task list (``GET /cluster/tasks``)."""

    upid: str
    type: str
    id: str
    starttime: float
    running: bool
    ok: bool | None = None  # once stopped: OK or warnings; None while running


@dataclass(frozen=True, slots=True)
class Settlement:
    intent_id: int
    outcome: Outcome
    reason: str
    upid: str | None = None


def task_from_entry(entry: Mapping[str, object]) -> TaskSeen | None:
    """A ``/cluster/tasks`` entry as a TaskSeen; None for an entry without the fields needed."""
    upid, kind = entry.get("upid"), entry.get("type")
    start = entry.get("starttime")
    if not isinstance(upid, str) or not isinstance(kind, str) or not isinstance(start, int | float):
        return None
    status = entry.get("status")
    running = "endtime" not in entry and status in (None, "", "running")
    ok = None if running else (status == "OK" or str(status or "").startswith("WARNINGS"))
    return TaskSeen(upid, kind, str(entry.get("id", "")), float(start), running, ok)


def matching_task(intent: PendingIntent, tasks: Iterable[TaskSeen]) -> TaskSeen | None:
    """The task the intent's request started: its own UPID when known, else the newest
    migration of the guest that began after the intent was written."""
    candidates = list(tasks)
    if intent.upid:
        return next((t for t in candidates if t.upid == intent.upid), None)
    if intent.action != "migrate" or intent.vmid is None:
        return None
    started = [
        t
        for t in candidates
        if t.type in MIGRATE_TASK_TYPES and t.id == str(intent.vmid) and t.starttime >= intent.created_at - START_SLACK
    ]
    return max(started, key=lambda t: t.starttime, default=None)


def settle(
    intent: PendingIntent,
    *,
    tasks: Iterable[TaskSeen],
    guest_nodes: Mapping[int, str],
    online_nodes: frozenset[str],
    now: float,
    grace: float = DEFAULT_GRACE,
) -> Settlement:
    """What became of ``intent``: a task to follow, done, failed, abandoned (nothing happened:
    safe to plan again) or wait (too young to tell)."""
    young = now - intent.created_at < grace
    if intent.action == "migrate":
        task = matching_task(intent, tasks)
        if task is not None:
            if task.running:
                return Settlement(intent.id, "follow", f"its task {task.type} is still running", task.upid)
            outcome: Outcome = "done" if task.ok else "failed"
            return Settlement(
                intent.id, outcome, f"its task {task.type} ended {'OK' if task.ok else 'with an error'}", task.upid
            )
        where = guest_nodes.get(intent.vmid) if intent.vmid is not None else None
        if where == intent.target:
            return Settlement(intent.id, "done", f"guest {intent.vmid} is on {intent.target}")
        if young:
            return Settlement(intent.id, "wait", "no task yet; the request may still be on its way")
        return Settlement(intent.id, "abandoned", f"no task started and guest {intent.vmid} is still on {where or '?'}")
    node = intent.target or intent.source
    arrived = node not in online_nodes if intent.action == "power_off" else node in online_nodes
    if arrived:
        state = "off" if intent.action == "power_off" else "online"
        return Settlement(intent.id, "done", f"node {node} is {state}")
    if young:
        return Settlement(intent.id, "wait", f"node {node} has not changed yet")
    return Settlement(intent.id, "abandoned", f"node {node} never changed state")
