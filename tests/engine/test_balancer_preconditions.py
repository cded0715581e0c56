"""The balancer worker plans again after reading PVE's migrate preconditions only when an answer
can change the plan: answers that refuse no balanced node and bring no local disk or resource
leave the planner judging the VMs as it did unread, so the plan is taken as it is, checked."""

from __future__ import annotations

from pvetop.engine import balancer
from pvetop.engine.balancer import BalancerWorker, changes_nothing, with_preconditions_read
from pvetop.engine.migrations import MigrationExecutor
from pvetop.model import MigratePrecondition
from pvetop.policy.balance import BalancerConfig, plan_balance
from pvetop.policy.rules import RuleSet
from tests.factories import GIB, make_guest, make_node, make_snapshot

NODES = ("pve1", "pve2", "pve3")
NOW = 1_000_000.0


def hot_cluster():
    """pve1 carries six 8 GiB VMs busy on 2 cores each; the other nodes are idle."""
    guests = [make_guest(100 + i, "pve1", mem=8 * GIB, cpu=1.0) for i in range(6)]
    return make_snapshot([make_node(name) for name in NODES], guests, derive_usage=True)


def neutral(node: str) -> MigratePrecondition:
    """PVE's answer for a VM on shared storage: every other node allowed, nothing local."""
    return MigratePrecondition(running=True, allowed_nodes=frozenset(NODES) - {node})


def test_a_plan_checked_with_answers_that_change_nothing_is_the_plan_made_with_them():
    snapshot, config = hot_cluster(), BalancerConfig()
    unread = plan_balance(snapshot, RuleSet(), config, now=NOW)
    assert unread.moves and unread.unchecked
    answers = {vmid: neutral(snapshot.guest_by_vmid[vmid].node) for vmid in unread.unchecked}
    assert all(changes_nothing(answers[vmid], "pve1", NODES) for vmid in answers)
    checked = with_preconditions_read(unread, unread.unchecked)
    assert checked == plan_balance(snapshot, RuleSet(), config, now=NOW, preconditions=answers)
    assert not checked.unchecked and all(step.move.with_local_disks is False for step in checked.moves)


def test_answers_that_may_change_the_plan_are_told_apart():
    assert not changes_nothing(
        MigratePrecondition(running=True, local_disks=("local-lvm:vm-100-disk-0",)), "pve1", NODES
    )
    assert not changes_nothing(MigratePrecondition(running=True, local_resources=("hostpci0",)), "pve1", NODES)
    refused = MigratePrecondition(running=True, not_allowed_nodes={"pve3": "storage 'x' not available"})
    assert not changes_nothing(refused, "pve1", NODES)
    assert not changes_nothing(MigratePrecondition(running=True, allowed_nodes=frozenset({"pve2"})), "pve1", NODES)
    # a node the balancer does not even out (offline, reserved) is never a target
    assert changes_nothing(
        MigratePrecondition(running=True, allowed_nodes=frozenset({"pve2"})), "pve1", ("pve1", "pve2")
    )


async def test_the_worker_does_not_plan_again_when_the_answers_change_nothing(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs.get("preconditions"))
        return plan_balance(*args, **kwargs)

    monkeypatch.setattr(balancer, "plan_balance", counted)
    # without a client (a fixed snapshot on screen) every VM stands as readable with nothing local
    worker = BalancerWorker(None, None, "test", MigrationExecutor(None), clock=lambda: NOW)
    plan = await worker.plan_now(hot_cluster(), BalancerConfig())
    assert len(calls) == 1 and plan.moves and not plan.unchecked
    assert plan == plan_balance(
        hot_cluster(), RuleSet(), BalancerConfig(), now=NOW, preconditions=worker._known(hot_cluster())
    )
