"""Emptying a node before maintenance: preconditions, the plan, and its execution.

``prepare_evacuation`` asks Proxmox VE what ties each guest to the node (local disks, storage
missing elsewhere) and plans with ``policy.placement.plan_evacuation``; guests held only by a
pin or lock come back in ``needs_decision``, and a user who says "move them anyway" gets a new
plan with those pins and locks lifted for this evacuation only (``lift_rules``), so capacity is
still accounted for every move. ``run_evacuation`` marks the node ``maintenance`` (it stays so
until cleared: nothing is sent back to it), journals, and runs the moves on an executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pvetop.engine.migrations import MigrationExecutor, MigrationJob, MoveOptions
from pvetop.errors import PvetopError
from pvetop.model import ClusterSnapshot, Guest, MigratePrecondition
from pvetop.policy.placement import EvacuationPlan, Unplaced, plan_evacuation
from pvetop.policy.rules import RuleSet
from pvetop.pve import actions

PRECONDITION_CONCURRENCY = 4


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
    node: str
    jobs: tuple[MigrationJob, ...]
    left_behind: tuple[Unplaced, ...]

    @property
    def failed(self) -> tuple[MigrationJob, ...]:
        return tuple(job for job in self.jobs if not job.succeeded)

    @property
    def complete(self) -> bool:
        """Every guest left the node."""
        return not self.failed and not self.left_behind

    def summary(self) -> str:
        moved = len(self.jobs) - len(self.failed)
        parts = [f"{moved} of {len(self.jobs)} moves done"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(str(job.vmid) for job in self.failed)})")
        if self.left_behind:
            parts.append(
                f"{len(self.left_behind)} left on {self.node} ({', '.join(str(u.vmid) for u in self.left_behind)})"
            )
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
    executor: MigrationExecutor, proposal: EvacuationProposal, jobs: list[MigrationJob], *, actor: str = "user"
) -> EvacuationResult:
    """Waits for the queued moves and journals the outcome (the maintenance flag stays)."""
    await executor.wait(jobs)
    result = EvacuationResult(proposal.node, tuple(jobs), proposal.left_behind)
    store, cluster = executor.store, executor.cluster
    if store is not None and cluster:
        await asyncio.to_thread(
            store.journal,
            cluster,
            actor,
            "evacuate",
            f"node/{proposal.node}",
            {"moved": [job.vmid for job in jobs if job.succeeded], "failed": [job.vmid for job in result.failed]},
            "ok" if result.complete else f"incomplete: {result.summary()}",
        )
    return result


async def run_evacuation(
    executor: MigrationExecutor,
    proposal: EvacuationProposal,
    *,
    options: MoveOptions | None = None,
    actor: str = "user",
) -> EvacuationResult:
    """The whole evacuation: start it, then wait for every move."""
    jobs = await start_evacuation(executor, proposal, options=options, actor=actor)
    return await finish_evacuation(executor, proposal, jobs, actor=actor)
