"""Evacuating a node against the simulator: everything moves, within limits, never to a reserved node."""

from __future__ import annotations

import asyncio
import re

import pytest

from pvetop.engine.evacuation import lift_rules, prepare_evacuation, run_evacuation
from pvetop.engine.migrations import Limits, MigrationExecutor
from pvetop.engine.report import plan_lines
from pvetop.policy.rules import RuleSet
from tests.engine.simdrive import (
    drive,
    guest_node,
    max_overlap,
    migration_tasks,
    set_failure_rate,
)

SOURCE = "pve-mini1"
RESERVED = "pve-mini2"
TARGET_IN_LOG = re.compile(r"starting migration of (?:VM|CT) \d+ to node '([^']+)'")


@pytest.fixture
def store(store):
    store.reserve_node("homelab", RESERVED, reason="test")
    return store


def target_of(task) -> str:
    return TARGET_IN_LOG.search(" ".join(text for _, text in task.lines)).group(1)


async def evacuate(sim, client, store, proposal, limits: Limits):
    executor = MigrationExecutor(client, store=store, cluster="homelab", limits=limits, poll=0.01)
    running = asyncio.ensure_future(run_evacuation(executor, proposal))
    await drive(sim, running.done, step=2.0)
    return running.result()


async def test_evacuation_moves_every_guest_two_at_once_never_to_the_reserved_node(sim, client, store):
    snapshot = client.fetch_snapshot()
    on_source = {guest.vmid for guest in snapshot.guests_by_node[SOURCE]}
    assert len(on_source) >= 5
    proposal = await prepare_evacuation(client, snapshot, SOURCE, store.ruleset("homelab"))
    assert proposal.plan.complete and {m.vmid for m in proposal.plan.moves} == on_source
    assert all(move.target != RESERVED for move in proposal.plan.moves)
    assert any(move.with_local_disks for move in proposal.plan.moves)  # 104's local disk is known up front

    result = await evacuate(sim, client, store, proposal, Limits())

    assert result.complete, result.summary()
    # vm:100's HA rule prefers the minis (non-strict, failback on): PVE's CRM takes it off pve-big
    # again on its next rounds, so only the evacuation's own moves are counted here
    record = [task for task in migration_tasks(sim) if target_of(task) == "pve-big"]
    assert {int(task.id) for task in record} == on_source
    assert max_overlap(record) == 2
    assert all(target_of(task) != RESERVED for task in migration_tasks(sim) if task.id != "100")
    assert {vmid: guest_node(sim, vmid) for vmid in on_source - {100}} == {
        vmid: "pve-big" for vmid in on_source - {100}
    }
    assert [m.node for m in store.maintenance("homelab")] == [SOURCE]
    evacuations = [e for e in store.recent_journal("homelab") if e.action == "evacuate"]
    assert [e.result for e in evacuations] == ["ok", "started"]
    assert len([e for e in store.recent_journal("homelab") if e.action == "migrate" and e.result == "ok"]) == 7


async def test_default_limits_move_two_guests_at_a_time(sim, client, store):
    snapshot = client.fetch_snapshot()
    proposal = await prepare_evacuation(client, snapshot, SOURCE, store.ruleset("homelab"))
    result = await evacuate(sim, client, store, proposal, Limits())
    assert result.complete
    assert max_overlap(migration_tasks(sim), key=lambda task: task.node) == 2


async def test_pinned_guest_stays_unless_the_user_moves_it_anyway(sim, client, store):
    store.pin_guest("homelab", 105, "paperless", [SOURCE])
    snapshot = client.fetch_snapshot()
    proposal = await prepare_evacuation(client, snapshot, SOURCE, store.ruleset("homelab"))
    assert [item.vmid for item in proposal.plan.needs_decision] == [105]
    assert "pinned to pve-mini1" in "\n".join(plan_lines(proposal.plan))

    decided = proposal.decide([105])
    assert decided.plan.complete and 105 in {m.vmid for m in decided.plan.moves}
    assert store.pin("homelab", 105) is not None  # the pin itself is kept

    result = await evacuate(sim, client, store, proposal, Limits())
    assert not result.complete and [u.vmid for u in result.left_behind] == [105]
    assert guest_node(sim, 105) == SOURCE and "1 left on pve-mini1 (105)" in result.summary()


async def test_failed_moves_leave_guests_on_the_node_and_are_reported(sim, client, store):
    set_failure_rate(sim, 1.0)
    snapshot = client.fetch_snapshot()
    proposal = await prepare_evacuation(client, snapshot, SOURCE, store.ruleset("homelab"))
    result = await evacuate(sim, client, store, proposal, Limits())
    assert not result.complete and len(result.failed) == len(proposal.plan.moves)
    assert all(guest_node(sim, move.vmid) == SOURCE for move in proposal.plan.moves)
    assert all("ERROR" in job.error for job in result.failed)
    assert store.recent_journal("homelab")[0].result.startswith("incomplete: 0 of 7 moves done; 7 failed")


def test_lift_rules_drops_only_the_chosen_pins_and_locks():
    rules = RuleSet(pins={105: {"a"}, 106: {"b"}}, locks={105, 107}, reserved={"c"})
    lifted = lift_rules(rules, [105])
    assert dict(lifted.pins) == {106: frozenset({"b"})} and lifted.locks == {107} and lifted.reserved == {"c"}
    assert lift_rules(rules, []) is rules
