"""Emptying a node before maintenance: preconditions, the plan, and its execution.

``prepare_evacuation`` asks Proxmox VE what ties each guest to the node (local disks, storage
missing elsewhere) and plans with ``policy.placement.plan_evacuation``; guests held only by a
pin or lock come back in ``needs_decision``, and a user who says "move them anyway" gets a new
plan with those pins and locks lifted for this evacuation only (``lift_rules``), so capacity is
still accounted for every move. ``run_evacuation`` marks the node ``maintenance`` (it stays so
until cleared: pvetop sends nothing back to it), journals, runs the moves on an executor and
watches the cluster until the node is empty, re-planning around nodes that crash meanwhile and
moving off guests PVE's HA manager recovers onto it (``finish_evacuation``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pvetop.engine.migrations import JobState, MigrationExecutor, MigrationJob, MoveOptions
from pvetop.errors import PvetopError
from pvetop.model import ClusterSnapshot, Guest, MigratePrecondition
from pvetop.policy.placement import EvacuationPlan, Unplaced, plan_evacuation
from pvetop.policy.rules import RuleSet
from pvetop.pve import actions

PRECONDITION_CONCURRENCY = 4
WATCH_MOVES_PER_GUEST = 2  # moves the watch starts for one guest (it came back, its target died)
HA_WATCH_SECONDS = 180.0  # after the last move, how long HA fencing/recovery elsewhere is waited for
HA_SETTLED_STATES = frozenset({"started", "stopped", "ignored", "disabled"})
HA_MAINTENANCE_NOTE = (
    "PVE's HA node maintenance (ha-manager crm-command node-maintenance) has no REST endpoint: "
    "guests the HA manager recovers onto this node are moved off again until the evacuation ends"
)


def lift_rules(rules: RuleSet, vmids: Iterable[int]) -> RuleSet:
    """The rules without the pins and locks of ``vmids``: the user chose to move them anyway."""
    lifted = frozenset(vmids)
    if not lifted:
        return rules
    return replace(
        rules,
        pins={vmid: nodes for vmid, nodes in rules.pins.items() if vmid not in lifted},
        locks=rules.locks - lifted,
    )


async def fetch_preconditions(client: Any, guests: Iterable[Guest]) -> dict[int, MigratePrecondition]:
    """``GET .../migrate`` for each guest, a few at a time; a guest whose answer fails is planned without it."""
    gate = asyncio.Semaphore(PRECONDITION_CONCURRENCY)

    async def one(guest: Guest) -> tuple[int, MigratePrecondition | None]:
        async with gate:
            try:
                return guest.vmid, await asyncio.to_thread(actions.migrate_precondition, client, guest)
            except PvetopError:
                return guest.vmid, None

    answers = await asyncio.gather(*(one(guest) for guest in guests if guest.status != "unknown"))
    return {vmid: pre for vmid, pre in answers if pre is not None}


@dataclass(frozen=True)
class EvacuationProposal:
    """A plan plus what it was made from, so a user's decisions can re-plan it."""

    snapshot: ClusterSnapshot
    rules: RuleSet
    preconditions: Mapping[int, MigratePrecondition]
    overrides: frozenset[int]
    plan: EvacuationPlan

    @property
    def node(self) -> str:
        return self.plan.node

    @property
    def left_behind(self) -> tuple[Unplaced, ...]:
        """Guests this plan does not move (undecided pins/locks and guests nothing can take)."""
        return self.plan.needs_decision + self.plan.unplaceable

    def decide(self, move_anyway: Iterable[int]) -> EvacuationProposal:
        """Re-plans with the pins and locks of ``move_anyway`` lifted (on top of earlier decisions)."""
        overrides = self.overrides | frozenset(move_anyway)
        plan = plan_evacuation(
            self.snapshot,
            self.node,
            lift_rules(self.rules, overrides),
            mode="manual",
            now=self.plan.planned_at,
            preconditions=self.preconditions,
        )
        return replace(self, overrides=overrides, plan=plan)


async def prepare_evacuation(
    client: Any, snapshot: ClusterSnapshot, node: str, rules: RuleSet, *, now: float | None = None
) -> EvacuationProposal:
    """Preconditions of the node's guests, then the plan (raises ``UsageError`` for an unknown node)."""
    plan_evacuation(snapshot, node, rules, mode="manual")  # fail fast on a bad node name, before any request
    preconditions = await fetch_preconditions(client, snapshot.guests_by_node.get(node, ()))
    plan = plan_evacuation(snapshot, node, rules, mode="manual", now=now, preconditions=preconditions)
    return EvacuationProposal(snapshot, rules, preconditions, frozenset(), plan)


@dataclass(frozen=True)
class EvacuationResult:
    """How an evacuation ended, judged by where the guests are afterwards (the last snapshot), not
    only by how the moves went: a guest the HA manager put back on the node is not "moved"."""

    node: str
    jobs: tuple[MigrationJob, ...]
    left_behind: tuple[Unplaced, ...]  # held by the plan (pins/locks not lifted, nothing could take them)
    locations: Mapping[int, str] = field(default_factory=dict)  # vmid -> node at the end, every guest involved
    offline_nodes: frozenset[str] = frozenset()  # at the end
    returned: tuple[int, ...] = ()  # guests that came (back) to the node (HA recovery) and were moved off again
    replanned: tuple[int, ...] = ()  # guests whose planned target went offline before or while moving
    source_lost: bool = False  # the node itself went offline: its moves were ended

    @property
    def remaining(self) -> tuple[int, ...]:
        """Guests on the node at the end."""
        return tuple(sorted(vmid for vmid, node in self.locations.items() if node == self.node))

    @property
    def failed(self) -> tuple[MigrationJob, ...]:
        """The last move of each guest still on the node, when that move failed."""
        last = {job.vmid: job for job in self.jobs if job.state is not JobState.CANCELLED}
        stuck = set(self.remaining) if self.locations else set(last)
        return tuple(job for vmid, job in last.items() if job.state is JobState.FAILED and vmid in stuck)

    @property
    def complete(self) -> bool:
        """Every guest left the node (and it stayed up to see it done)."""
        return not self.source_lost and not self.remaining and not self.failed and not self.left_behind

    def summary(self) -> str:
        moves = [job for job in self.jobs if job.state is not JobState.CANCELLED]
        done = sum(1 for job in moves if job.succeeded)
        parts = [f"{done} of {len(moves)} moves done"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(str(job.vmid) for job in self.failed)})")
        if self.source_lost:
            parts.append(f"{self.node} went offline: its moves were ended")
        if self.replanned:
            parts.append(f"{len(self.replanned)} re-planned after their target went offline")
        if self.returned:
            parts.append(
                f"{len(self.returned)} came to {self.node} during it (HA recovery) and were moved off again "
                f"({', '.join(map(str, self.returned))})"
            )
        remaining = self.remaining if self.locations else tuple(u.vmid for u in self.left_behind)
        if remaining:
            parts.append(f"{len(remaining)} left on {self.node} ({', '.join(map(str, remaining))})")
        if set(remaining) & set(self.returned):
            parts.append(
                f"the HA manager keeps bringing guests back: `ha-manager crm-command node-maintenance enable "
                f"{self.node}` on a node stops that (PVE offers no REST endpoint for it)"
            )
        stranded = sorted(vmid for vmid, node in self.locations.items() if node in self.offline_nodes)
        if stranded and not self.source_lost:
            parts.append("on offline nodes: " + ", ".join(f"{vmid} on {self.locations[vmid]}" for vmid in stranded))
        return "; ".join(parts)


async def start_evacuation(
    executor: MigrationExecutor,
    proposal: EvacuationProposal,
    *,
    options: MoveOptions | None = None,
    actor: str = "user",
) -> list[MigrationJob]:
    """Marks the node maintenance, journals the plan and queues every move (they start within limits)."""
    plan = proposal.plan
    store, cluster = executor.store, executor.cluster
    if store is not None and cluster:
        await asyncio.to_thread(
            store.set_maintenance, cluster, plan.node, reason=f"evacuation of {len(plan.moves)} guests", actor=actor
        )
        await asyncio.to_thread(
            store.journal,
            cluster,
            actor,
            "evacuate",
            f"node/{plan.node}",
            {
                "moves": [f"{m.vmid}->{m.target}" for m in plan.moves],
                "left": [u.vmid for u in proposal.left_behind],
                "overrides": sorted(proposal.overrides),
            },
            "started",
        )
    return [executor.submit(move, options, actor=actor) for move in plan.moves]


async def finish_evacuation(
    executor: MigrationExecutor,
    proposal: EvacuationProposal,
    jobs: list[MigrationJob],
    *,
    actor: str = "user",
    options: MoveOptions | None = None,
    ha_watch: float = HA_WATCH_SECONDS,
) -> EvacuationResult:
    """Watches the cluster until the node is empty and journals the outcome (the maintenance flag stays).

    Nodes crash while this runs. From a fresh snapshot every ``executor.poll`` seconds: a queued
    move whose target went offline is re-planned instead of started, and so is a guest whose move
    failed because its target went offline; a guest that arrives on the node (PVE's HA manager
    recovering it there: node maintenance has no REST endpoint, see ``HA_MAINTENANCE_NOTE``) is
    moved off again; when the node itself goes offline its moves end at once. After the last move
    it watches on while the HA manager is still moving, fencing or recovering guests (at most
    ``ha_watch`` seconds), since it may choose this node.
    """
    watch = _Watch(executor, proposal, list(jobs), actor=actor, options=options)
    await watch.run(ha_watch)
    await executor.wait(watch.jobs)  # a finished job may still be writing its journal entry
    result = watch.result()
    store, cluster = executor.store, executor.cluster
    if store is not None and cluster:
        await asyncio.to_thread(
            store.journal,
            cluster,
            actor,
            "evacuate",
            f"node/{proposal.node}",
            {
                "moved": sorted(vmid for vmid, node in result.locations.items() if node != proposal.node),
                "failed": [job.vmid for job in result.failed],
                "left": list(result.remaining),
                "returned": list(result.returned),
                "replanned": list(result.replanned),
                "locations": {str(vmid): node for vmid, node in sorted(result.locations.items())},
            },
            "ok" if result.complete else f"incomplete: {result.summary()}",
        )
    return result


def _settled(guest: Guest) -> bool:
    """A guest whose state is not changing under the HA manager's hands: one it is recovering or
    starting would be moved with the wrong mode (a container that starts meanwhile needs restart)."""
    if guest.status == "unknown":
        return False
    if guest.hastate is None:
        return True
    return guest.hastate in HA_SETTLED_STATES and (guest.hastate != "started" or guest.running)


class _Watch:
    """The state of one running evacuation's watch (see ``finish_evacuation``)."""

    def __init__(
        self,
        executor: MigrationExecutor,
        proposal: EvacuationProposal,
        jobs: list[MigrationJob],
        *,
        actor: str,
        options: MoveOptions | None,
    ) -> None:
        self.executor = executor
        self.proposal = proposal
        self.node = proposal.node
        self.jobs = jobs
        self.actor = actor
        self.options = options
        self.held = {item.vmid for item in proposal.left_behind}  # the user's plan keeps them here
        self.original = {guest.vmid for guest in proposal.snapshot.guests_by_node.get(self.node, ())}
        self.moves_of: dict[int, int] = {}  # vmid -> moves submitted by the watch
        self.returned: list[int] = []
        self.replanned: list[int] = []
        self.source_lost = False
        self.snapshot: ClusterSnapshot = proposal.snapshot

    def unfinished(self) -> list[MigrationJob]:
        return [job for job in self.jobs if not job.state.finished]

    async def run(self, ha_watch: float) -> None:
        quiet_since: float | None = None
        while True:
            try:
                self.snapshot = await asyncio.to_thread(self.executor.client.fetch_snapshot)
            except PvetopError:  # the jobs follow their tasks on their own meanwhile
                await asyncio.sleep(self.executor.poll)
                continue
            online = {node.name for node in self.snapshot.online_nodes}
            if self.node not in online:
                await self._end_moves(f"{self.node} went offline during the evacuation: this move ended")
                self.source_lost = True
                return
            await self._replan_offline_targets(online)
            await self._move_off_strays(online)
            if not self.unfinished():
                recovering = any(guest.hastate and not _settled(guest) for guest in self.snapshot.guests)
                now = time.monotonic()
                quiet_since = quiet_since if quiet_since is not None else now
                if not recovering or now - quiet_since >= ha_watch:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(self.executor.poll)

    async def _end_moves(self, reason: str) -> None:
        for job in self.unfinished():
            await self.executor.abandon(job, reason)

    async def _replan_offline_targets(self, online: set[str]) -> None:
        """Queued moves to a node that went offline are cancelled; ``_move_off_strays`` plans them anew."""
        for job in self.unfinished():
            if job.state is JobState.QUEUED and job.move.target not in online:
                await self.executor.abandon(
                    job, f"{job.move.target} went offline before the move started: re-planned", state=JobState.CANCELLED
                )
                self.replanned.append(job.vmid)

    def _needs_moving(self, vmid: int, online: set[str]) -> bool:
        if vmid in self.held or self.executor.job_for(vmid) is not None:
            return False
        if self.moves_of.get(vmid, 0) >= WATCH_MOVES_PER_GUEST:
            return False  # it keeps coming back, or keeps failing: reported, not moved forever
        last = next((job for job in reversed(self.jobs) if job.vmid == vmid), None)
        if last is None:
            return True  # arrived on the node (the plan moved or held every guest it found there)
        if last.state is JobState.SUCCEEDED:
            return True  # it left and came back
        if last.state is JobState.CANCELLED:
            return vmid in self.replanned
        return last.move.target not in online  # failed: retried only when its target died

    async def _move_off_strays(self, online: set[str]) -> None:
        here = [guest for guest in self.snapshot.guests_by_node.get(self.node, ()) if _settled(guest)]
        strays = {guest.vmid: guest for guest in here if self._needs_moving(guest.vmid, online)}
        if not strays:
            return
        preconditions = dict(self.proposal.preconditions)
        unknown = [guest for vmid, guest in strays.items() if vmid not in preconditions]
        preconditions.update(await fetch_preconditions(self.executor.client, unknown))
        plan = plan_evacuation(
            self.snapshot,
            self.node,
            lift_rules(self.proposal.rules, self.proposal.overrides),
            mode="manual",
            preconditions=preconditions,
        )
        for move in plan.moves:
            if move.vmid not in strays:
                continue
            last = next((job for job in reversed(self.jobs) if job.vmid == move.vmid), None)
            if (last is None or last.succeeded) and move.vmid not in self.returned:
                self.returned.append(move.vmid)
            elif last is not None and last.state is JobState.FAILED and move.vmid not in self.replanned:
                self.replanned.append(move.vmid)
            self.moves_of[move.vmid] = self.moves_of.get(move.vmid, 0) + 1
            self.jobs.append(self.executor.submit(move, self.options, actor=self.actor))

    def result(self) -> EvacuationResult:
        involved = self.original | {vmid for vmid in self.moves_of} | {job.vmid for job in self.jobs}
        by_vmid = self.snapshot.guest_by_vmid
        return EvacuationResult(
            node=self.node,
            jobs=tuple(self.jobs),
            left_behind=tuple(
                item
                for item in self.proposal.left_behind
                if item.vmid in by_vmid and by_vmid[item.vmid].node == self.node
            ),
            locations={vmid: by_vmid[vmid].node for vmid in sorted(involved) if vmid in by_vmid},
            offline_nodes=frozenset(node.name for node in self.snapshot.nodes if not node.online),
            returned=tuple(self.returned),
            replanned=tuple(dict.fromkeys(self.replanned)),
            source_lost=self.source_lost,
        )


async def run_evacuation(
    executor: MigrationExecutor,
    proposal: EvacuationProposal,
    *,
    options: MoveOptions | None = None,
    actor: str = "user",
    ha_watch: float = HA_WATCH_SECONDS,
) -> EvacuationResult:
    """The whole evacuation: start it, then watch it to its end (``finish_evacuation``)."""
    jobs = await start_evacuation(executor, proposal, options=options, actor=actor)
    return await finish_evacuation(executor, proposal, jobs, actor=actor, options=options, ha_watch=ha_watch)
