"""Invariant checkers for the soak: small pure functions over the simulator's own record.

They read what the simulated cluster did (its task list, node power and guest placement sampled
over time) and what the rules store holds (rules, journal), never pvetop's own view of the
cluster, so a bug in how pvetop reads the cluster cannot hide a bug in what it does. Each checker
returns the violations it found, one line each; an empty list means the invariant held.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MIGRATION_TYPES = ("qmigrate", "vzmigrate")
HA_REQUEST_TYPE = "hamigrate"
HA_FOLLOWUP_SECONDS = 300.0  # an HA migrate request becomes the CRM's migration task within this
OFF = "off"  # the sim's power state of a node switched off on purpose (not crashed, not booting)
TARGET_RE = re.compile(r"migration of (?:VM|CT) \d+ to node '([^']+)'")


@dataclass(frozen=True)
class TaskRow:
    """One task of the sim's record; ``target`` is read from a migration's log."""

    upid: str
    node: str
    type: str
    vmid: int | None
    user: str
    start: float
    end: float | None
    exitstatus: str | None
    target: str | None = None

    def overlaps(self, other: TaskRow) -> bool:
        self_end = float("inf") if self.end is None else self.end
        other_end = float("inf") if other.end is None else other.end
        return self.start < other_end and other.start < self_end


@dataclass(frozen=True)
class Sample:
    """The cluster at one instant: each node's power state and votes, each guest's node and status."""

    t: float
    nodes: Mapping[str, tuple[str, int]]
    guests: Mapping[int, tuple[str, str]]


@dataclass(frozen=True)
class Rules:
    pins: Mapping[int, frozenset[str]] = field(default_factory=dict)
    locks: frozenset[int] = frozenset()
    reservations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class JournalRow:
    at: float
    actor: str
    action: str
    target: str
    upid: str | None
    result: str


def task_target(lines: Iterable[str]) -> str | None:
    for line in lines:
        match = TARGET_RE.search(line)
        if match:
            return match.group(1)
    return None


def automatic_migrations(tasks: Iterable[TaskRow], token_user: str) -> list[TaskRow]:
    """Migration tasks pvetop caused: started by its token, or run by the HA manager for an HA
    migrate request its token made shortly before (the CRM runs those as root@pam)."""
    tasks = list(tasks)
    requests = [t for t in tasks if t.type == HA_REQUEST_TYPE and t.user == token_user]
    claimed: set[str] = set()
    result = []
    for task in sorted((t for t in tasks if t.type in MIGRATION_TYPES), key=lambda t: t.start):
        if task.user == token_user:
            result.append(task)
            continue
        for request in requests:
            if (
                request.upid not in claimed
                and request.vmid == task.vmid
                and request.start <= task.start <= request.start + HA_FOLLOWUP_SECONDS
            ):
                claimed.add(request.upid)
                result.append(task)
                break
    return result


def rules_respected(moves: Iterable[TaskRow], rules: Rules) -> list[str]:
    """No automatic move of a locked guest, off a pinned guest's nodes, or onto a reserved node."""
    problems = []
    for move in moves:
        where = f"{move.type} of {move.vmid} to {move.target} at {move.start:.0f}"
        if move.vmid in rules.locks:
            problems.append(f"locked guest moved: {where}")
        pinned = rules.pins.get(move.vmid) if move.vmid is not None else None
        if pinned is not None and move.target not in pinned:
            problems.append(f"pin broken ({', '.join(sorted(pinned))}): {where}")
        if move.target in rules.reservations:
            problems.append(f"reserved node used: {where}")
    return problems


def quorum_kept(samples: Iterable[Sample], margin: int) -> list[str]:
    """The nodes pvetop switched off never leave the cluster below quorum with ``margin`` more
    nodes failing (the largest voters). Crashed or booting nodes count as up here: a crash is
    the fault schedule's doing, not pvetop's, and is judged by ``quorum_lost_to_power_offs``."""
    problems = []
    for sample in samples:
        total = sum(votes for _, votes in sample.nodes.values())
        up = sorted((votes for power, votes in sample.nodes.values() if power != OFF), reverse=True)
        left = sum(up[margin:])
        if left * 2 <= total:
            off = sorted(name for name, (power, _) in sample.nodes.items() if power == OFF)
            problems.append(
                f"at {sample.t:.0f}: {left} of {total} votes left after {margin} more failure(s) with "
                f"{', '.join(off)} off"
            )
    return problems


def no_running_guest_on_off_node(samples: Iterable[Sample]) -> list[str]:
    problems = []
    for sample in samples:
        for vmid, (node, status) in sample.guests.items():
            if status == "running" and sample.nodes.get(node, ("", 0))[0] == OFF:
                problems.append(f"at {sample.t:.0f}: guest {vmid} running on {node}, which is off")
    return problems


def guests_kept(first: Sample, last: Sample, may_be_stopped: Iterable[int] = ()) -> list[str]:
    """Every guest is still there, and every guest that ran at first runs at the end (except
    those the record excuses: asleep with their node, or stopped by a crash and not on boot)."""
    excused = set(may_be_stopped)
    problems = [f"guest {vmid} is gone" for vmid in sorted(set(first.guests) - set(last.guests))]
    for vmid, (_, status) in sorted(first.guests.items()):
        if status == "running" and vmid in last.guests and last.guests[vmid][1] != "running" and vmid not in excused:
            problems.append(f"guest {vmid} ran at first and is {last.guests[vmid][1]} at the end")
    return problems


def no_double_migration(tasks: Iterable[TaskRow]) -> list[str]:
    migrations = sorted((t for t in tasks if t.type in MIGRATION_TYPES), key=lambda t: t.start)
    problems = []
    for index, task in enumerate(migrations):
        for other in migrations[index + 1 :]:
            if other.vmid == task.vmid and task.overlaps(other):
                problems.append(f"guest {task.vmid} in two migrations at once: {task.upid} and {other.upid}")
    return problems


def no_repeat_within_cooldown(moves: Iterable[TaskRow], cooldown: float) -> list[str]:
    """No guest moved twice by the automation within ``cooldown`` seconds of its last move's end."""
    last_end: dict[int | None, float] = {}
    problems = []
    for move in sorted(moves, key=lambda t: t.start):
        before = last_end.get(move.vmid)
        if before is not None and move.start - before < cooldown:
            problems.append(
                f"guest {move.vmid} moved again {move.start - before:.0f} s after its last move "
                f"(cooldown {cooldown:.0f} s)"
            )
        last_end[move.vmid] = move.end if move.end is not None else move.start
    return problems


def caps_respected(moves: Iterable[TaskRow], *, parallel: int, per_source: int, per_target: int) -> list[str]:
    """At no instant more automatic migrations than the caps: cluster-wide, leaving one node,
    arriving on one node."""
    moves = list(moves)
    problems = []
    for move in moves:
        running = [other for other in moves if other.start <= move.start and move.overlaps(other)]
        checks = (
            ("cluster-wide", running, parallel),
            (f"from {move.node}", [o for o in running if o.node == move.node], per_source),
            (f"to {move.target}", [o for o in running if o.target == move.target], per_target),
        )
        for what, group, cap in checks:
            if len(group) > cap:
                problems.append(f"at {move.start:.0f}: {len(group)} automatic migrations {what} (cap {cap})")
    return problems


def writes_journaled(tasks: Iterable[TaskRow], journal: Iterable[JournalRow], token_user: str) -> list[str]:
    """Every migration (or HA migrate request) pvetop's token started has a journal entry with its UPID."""
    journaled = {row.upid for row in journal if row.upid}
    return [
        f"{task.type} {task.upid} started by {token_user} is not in the journal"
        for task in tasks
        if task.user == token_user and task.type in (*MIGRATION_TYPES, HA_REQUEST_TYPE) and task.upid not in journaled
    ]


def store_intact(path: str) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    answer = [row[0] for row in rows]
    return [] if answer == ["ok"] else [f"integrity_check: {line}" for line in answer]


def no_local_disk_moves(moves: Iterable[TaskRow], local_disk_vms: Iterable[int]) -> list[str]:
    """With ``balancer.local_disks`` off, the balancer never tries to move a VM whose disks live on
    a node's own storage (a live migration PVE refuses, or a disk copy nobody asked for)."""
    local = set(local_disk_vms)
    return [
        f"VM {move.vmid} with local disks moved to {move.target} at {move.start:.0f} ({move.exitstatus})"
        for move in moves
        if move.type == "qmigrate" and move.vmid in local
    ]


def ha_never_moves_back(
    tasks: Iterable[TaskRow],
    moves: Iterable[TaskRow],
    *,
    window: float,
    partners: Mapping[int, Iterable[int]] | None = None,
) -> list[str]:
    """After an automatic move of a guest from A to B, the HA manager's own next migration of
    that guest (CRS rebalancing, node affinity, a shutdown policy) does not take it back to A
    within ``window`` seconds: pvetop put it where the HA manager would not let it stay.

    One move back is the HA manager's answer to a failure, not to where pvetop put the guest:
    PVE migrates a guest's positive-affinity ``partners`` (vmid -> partner vmids) along with it,
    and when a partner's migration to B fails, the CRM takes the guest back to the partner on A."""
    automatic = {move.upid for move in moves}
    tasks = list(tasks)
    by_guest: dict[int | None, list[TaskRow]] = {}
    for task in sorted((t for t in tasks if t.type in MIGRATION_TYPES), key=lambda t: t.start):
        by_guest.setdefault(task.vmid, []).append(task)
    problems = []
    for move, following in (pair for guest in by_guest.values() for pair in zip(guest, guest[1:], strict=False)):
        if move.upid not in automatic or move.exitstatus != "OK" or move.end is None:
            continue
        if following.upid in automatic or following.target != move.node or following.start - move.end > window:
            continue
        partner_moves = (task for vmid in (partners or {}).get(move.vmid, ()) for task in by_guest.get(vmid, []))
        if any(
            task.node == move.node
            and task.target == move.target
            and task.exitstatus not in (None, "OK")
            and task.end is not None
            and move.start <= task.start
            and task.end <= following.start
            for task in partner_moves
        ):
            continue  # a partner's migration to the same node failed: the CRM rejoins them
        problems.append(
            f"guest {move.vmid} moved {move.node} -> {move.target} at {move.start:.0f}, taken back to "
            f"{move.node} by {following.user} {following.start - move.end:.0f} s later ({following.upid})"
        )
    return problems


def secrets_shown(texts: Iterable[tuple[str, str]], secrets: Iterable[str], *, piece: int = 12) -> list[str]:
    """No secret, nor any ``piece`` characters of one in a row, in any (where, text) output."""
    pieces = {
        secret[start : start + piece]: name
        for name, secret in enumerate(s for s in secrets if s)
        for start in range(max(1, len(secret) - piece + 1))
    }
    problems = []
    for where, text in texts:
        for fragment, number in pieces.items():
            if fragment in text:
                problems.append(f"secret #{number + 1} shown in {where}")
                break
    return problems


def percentile(values: Iterable[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.99 for p99); 0 with no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def lag_within(lags: Iterable[float], *, p99_limit: float) -> list[str]:
    """The dashboard's event loop answers in time: the 99th percentile of its lateness (seconds)
    is at most ``p99_limit``; no sample at all is a failure too (the probe never ran)."""
    lags = list(lags)
    if not lags:
        return ["no lag sample: the dashboard's probe never ran"]
    p99 = percentile(lags, 0.99)
    if p99 > p99_limit:
        return [
            f"event-loop lag p99 {p99 * 1000:.0f} ms above {p99_limit * 1000:.0f} ms (max {max(lags) * 1000:.0f} ms)"
        ]
    return []


def memory_within(warm: int, end: int, *, limit: float, what: str, unit: str = "allocated blocks") -> list[str]:
    """A process's memory (RSS in KiB, or Python's allocated blocks) at the end of a long run grew
    at most ``limit`` (a fraction) since it was warm (the end of the first fault cycle); a
    missing reading is a failure too."""
    if not warm or not end:
        return [f"no memory reading of {what}"]
    growth = (end - warm) / warm
    if growth > limit:
        return [f"{what}'s memory grew {growth * 100:.1f} % since it was warm ({warm} → {end} {unit})"]
    return []
