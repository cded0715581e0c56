"""Moving a chosen set of guests (e.g. all with one tag) to one node."""

import pytest

from pvetop.errors import UsageError
from pvetop.policy.placement import plan_bulk_move
from pvetop.policy.rules import RuleSet
from tests.factories import GIB, make_guest, make_node, make_snapshot


def _snapshot():
    return make_snapshot(
        [make_node("pve1"), make_node("pve2"), make_node("pve3", mem=40 * GIB)],
        [
            make_guest(100, "pve1", mem=10 * GIB),
            make_guest(101, "pve2", mem=10 * GIB),
            make_guest(102, "pve2", mem=10 * GIB),
            make_guest(103, "pve3", mem=2 * GIB),
            make_guest(104, "pve1", status="stopped"),
        ],
        derive_usage=True,
    )


def test_guests_fill_the_target_in_vmid_order_until_full():
    plan = plan_bulk_move(_snapshot(), [102, 101, 100, 104], "pve3")
    assert [m.vmid for m in plan.moves] == [100, 101, 104]
    [refused] = plan.refused
    assert (refused.vmid, refused.reason) == (102, "needs 10.0 GiB, 2.0 GiB free")
    assert plan.target_before.mem == 42 * GIB
    assert plan.target_after.mem == 62 * GIB
    assert plan.after.loads["pve3"] == pytest.approx(plan.target_after.load)


def test_guests_already_there_and_unknown_ids_are_refused():
    plan = plan_bulk_move(_snapshot(), [103, 999], "pve3")
    assert plan.moves == ()
    assert [(r.vmid, r.reason) for r in plan.refused] == [
        (103, "already on this node"),
        (999, "no guest 999 in the cluster"),
    ]


def test_manual_bulk_moves_carry_rule_warnings_and_auto_refuses():
    rules = RuleSet(pins={100: {"pve1"}})
    manual = plan_bulk_move(_snapshot(), [100], "pve2", rules)
    assert manual.moves[0].warnings == ("pinned to pve1",)
    auto = plan_bulk_move(_snapshot(), [100], "pve2", rules, mode="auto")
    assert auto.refused[0].reason == "pinned to pve1"


def test_moves_say_how_to_migrate():
    move = plan_bulk_move(_snapshot(), [100], "pve2").moves[0]
    assert (move.source, move.target, move.online, move.restart) == ("pve1", "pve2", True, False)
    assert move.reason == "bulk move to pve2"


def test_unknown_target_is_a_usage_error():
    with pytest.raises(UsageError, match="no node 'pve7'"):
        plan_bulk_move(_snapshot(), [100], "pve7")
