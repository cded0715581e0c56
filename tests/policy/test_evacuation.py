"""Evacuating a node: where every guest goes, who needs a decision, who cannot go anywhere."""

from dataclasses import replace

import pytest

from pvetop.errors import UsageError
from pvetop.model import MigratePrecondition
from pvetop.policy.placement import comigrating, plan_evacuation, planned_move
from pvetop.policy.rules import RuleSet
from tests.factories import GIB, make_guest, make_ha_rule, make_node, make_snapshot


def _snapshot(guests, *, nodes=None, ha_rules=()):
    nodes = nodes or [make_node(name) for name in ("pve1", "pve2", "pve3", "pve4")]
    return make_snapshot(nodes, guests, ha_rules=ha_rules, derive_usage=True)


def _targets(plan):
    return {move.vmid: move.target for move in plan.moves}


def test_every_guest_leaves_and_nothing_is_left_behind():
    snap = _snapshot(
        [
            make_guest(100, "pve1", mem=8 * GIB),
            make_guest(101, "pve1", type="lxc"),
            make_guest(102, "pve1", status="stopped"),
            make_guest(103, "pve1", template=True, status="stopped"),
        ]
    )
    plan = plan_evacuation(snap, "pve1")
    assert set(_targets(plan)) == {100, 101, 102, 103}
    assert all(move.source == "pve1" and move.target != "pve1" for move in plan.moves)
    assert plan.complete and plan.needs_decision == () and plan.unplaceable == ()
    assert plan.projection.usage_of("pve1").guests == 0


def test_migration_kind_follows_guest_type_and_state():
    snap = _snapshot(
        [
            make_guest(100, "pve1"),
            make_guest(101, "pve1", type="lxc"),
            make_guest(102, "pve1", status="stopped"),
            make_guest(103, "pve1", type="lxc", status="stopped"),
        ]
    )
    moves = {move.vmid: move for move in plan_evacuation(snap, "pve1").moves}
    assert (moves[100].online, moves[100].restart, moves[100].with_local_disks) == (True, False, None)
    assert (moves[101].online, moves[101].restart, moves[101].with_local_disks) == (False, True, False)
    assert (moves[102].online, moves[102].restart) == (False, False)
    assert (moves[103].online, moves[103].restart) == (False, False)


def test_local_disks_come_from_the_precondition():
    snap = _snapshot([make_guest(100, "pve1"), make_guest(101, "pve1")])
    preconditions = {
        100: MigratePrecondition(running=True, local_disks=("local-lvm:vm-100-disk-0",)),
        101: MigratePrecondition(running=True),
    }
    moves = {move.vmid: move for move in plan_evacuation(snap, "pve1", preconditions=preconditions).moves}
    assert moves[100].with_local_disks is True
    assert moves[100].warnings == ("local disks are copied: local-lvm:vm-100-disk-0",)
    assert moves[101].with_local_disks is False


def test_largest_memory_first_each_to_the_least_loaded_node():
    snap = _snapshot(
        [
            make_guest(100, "pve1", mem=4 * GIB),
            make_guest(101, "pve1", mem=16 * GIB),
            make_guest(102, "pve1", mem=8 * GIB),
        ],
        nodes=[
            make_node("pve1"),
            make_node("pve2", mem=4 * GIB),
            make_node("pve3", mem=2 * GIB),
            make_node("pve4", mem=10 * GIB),
        ],
    )
    plan = plan_evacuation(snap, "pve1")
    assert [move.vmid for move in plan.moves] == [101, 102, 100]
    # 101 (16) -> pve3 (2 -> 18); 102 (8) -> pve2 (4 -> 12); 100 (4) -> pve4 (10 -> 14)
    assert _targets(plan) == {101: "pve3", 102: "pve2", 100: "pve4"}
    assert "pve3 has the lowest load after" in plan.moves[0].reason


def test_plans_are_deterministic():
    guests = [
        make_guest(100 + i, "pve1", mem=(i % 3 + 1) * GIB, status="running" if i % 4 else "stopped") for i in range(20)
    ]
    first = plan_evacuation(_snapshot(guests), "pve1")
    again = plan_evacuation(_snapshot(list(reversed(guests))), "pve1")
    assert first.moves == again.moves


def test_never_to_reserved_maintenance_or_offline_nodes():
    snap = _snapshot(
        [make_guest(100 + i, "pve1") for i in range(6)],
        nodes=[
            make_node("pve1"),
            make_node("pve2"),
            make_node("pve3"),
            make_node("pve4"),
            make_node("pve5", status="offline"),
        ],
    )
    for mode in ("manual", "auto"):
        plan = plan_evacuation(snap, "pve1", RuleSet(reserved={"pve2"}, maintenance={"pve3"}), mode=mode)
        assert set(_targets(plan).values()) == {"pve4"}


def test_memory_ceiling_is_respected():
    snap = _snapshot(
        [
            make_guest(100, "pve1", mem=20 * GIB),
            make_guest(101, "pve1", mem=20 * GIB),
            make_guest(102, "pve1", mem=20 * GIB),
        ],
        nodes=[make_node("pve1"), make_node("pve2", mem=20 * GIB)],
    )
    plan = plan_evacuation(snap, "pve1")  # 0.9 * 64 = 57.6 GiB: only one more fits on pve2
    assert len(plan.moves) == 1
    assert [u.vmid for u in plan.unplaceable] == [101, 102]
    assert plan.unplaceable[0].reason == "pve2: needs 20.0 GiB, 17.6 GiB free below the 90% ceiling"
    assert plan.projection.usage_of("pve2").mem_fraction <= 0.9
    assert len(plan_evacuation(snap, "pve1", mem_ceiling=1.0).moves) == 2  # 60 of 64 GiB


def test_pins_are_kept_when_their_set_has_room():
    snap = _snapshot([make_guest(100, "pve1")])
    plan = plan_evacuation(snap, "pve1", RuleSet(pins={100: {"pve1", "pve4"}}))
    assert _targets(plan) == {100: "pve4"}


def test_a_pinned_guest_without_another_node_needs_a_decision():
    snap = _snapshot([make_guest(100, "pve1"), make_guest(101, "pve1")])
    plan = plan_evacuation(snap, "pve1", RuleSet(pins={100: {"pve1"}}))
    assert _targets(plan).keys() == {101}
    [held] = plan.needs_decision
    assert (held.vmid, held.reason) == (100, "pinned to pve1")
    assert set(held.alternatives) == {"pve2", "pve3", "pve4"}
    assert not plan.complete


def test_a_pinned_guest_whose_other_node_is_full_says_why():
    snap = _snapshot(
        [make_guest(100, "pve1", mem=8 * GIB)],
        nodes=[make_node("pve1"), make_node("pve2", mem=60 * GIB), make_node("pve3")],
    )
    [held] = plan_evacuation(snap, "pve1", RuleSet(pins={100: {"pve1", "pve2"}})).needs_decision
    assert held.reason == "pinned to pve1, pve2; pve2: needs 8.0 GiB, 0.0 GiB free below the 90% ceiling"
    assert held.alternatives == ("pve3",)


def test_locked_guests_need_a_decision_in_manual_mode():
    snap = _snapshot([make_guest(100, "pve1")])
    [held] = plan_evacuation(snap, "pve1", RuleSet(locks={100})).needs_decision
    assert held.reason == "locked against automatic moves"
    assert held.alternatives  # the user may still move it


def test_in_auto_mode_pins_and_locks_are_hard():
    snap = _snapshot([make_guest(100, "pve1"), make_guest(101, "pve1")])
    plan = plan_evacuation(snap, "pve1", RuleSet(pins={100: {"pve1"}}, locks={101}), mode="auto")
    assert plan.moves == () and plan.needs_decision == ()
    reasons = {u.vmid: u.reason for u in plan.unplaceable}
    assert reasons == {100: "pinned to pve1", 101: "locked against automatic moves"}


def test_auto_mode_never_empties_a_reserved_node():
    snap = _snapshot([make_guest(100, "pve1")])
    plan = plan_evacuation(snap, "pve1", RuleSet(reserved={"pve1"}), mode="auto")
    assert plan.unplaceable[0].reason == "its node pve1 is reserved"
    assert plan_evacuation(snap, "pve1", RuleSet(reserved={"pve1"})).complete  # a user may


def test_anti_affinity_spreads_guests():
    rule = make_ha_rule("apart", "resource-affinity", ("vm:100", "vm:101", "vm:102"), affinity="negative")
    snap = _snapshot(
        [make_guest(100, "pve1"), make_guest(101, "pve1"), make_guest(102, "pve2")],
        nodes=[make_node("pve1"), make_node("pve2"), make_node("pve3"), make_node("pve4", mem=30 * GIB)],
        ha_rules=(rule,),
    )
    plan = plan_evacuation(snap, "pve1")
    targets = _targets(plan)
    assert set(targets.values()) == {"pve3", "pve4"}  # never pve2 (102 is there), never both on one node


def test_anti_affinity_with_no_node_left_is_unplaceable():
    rule = make_ha_rule("apart", "resource-affinity", ("vm:100", "vm:101", "vm:102"), affinity="negative")
    snap = _snapshot(
        [make_guest(100, "pve1"), make_guest(101, "pve2"), make_guest(102, "pve3")],
        nodes=[make_node("pve1"), make_node("pve2"), make_node("pve3")],
        ha_rules=(rule,),
    )
    [stuck] = plan_evacuation(snap, "pve1").unplaceable
    assert (
        stuck.reason
        == "pve2: HA anti-affinity rule 'apart': vm:101 there; pve3: HA anti-affinity rule 'apart': vm:102 there"
    )
    assert stuck.alternatives == ()


def test_positive_affinity_groups_move_together():
    rule = make_ha_rule("pair", "resource-affinity", ("vm:100", "vm:101"), affinity="positive")
    snap = _snapshot(
        [
            make_guest(100, "pve1", mem=4 * GIB),
            make_guest(101, "pve1", mem=4 * GIB),
            make_guest(102, "pve1", mem=6 * GIB),
        ],
        ha_rules=(rule,),
    )
    plan = plan_evacuation(snap, "pve1")
    targets = _targets(plan)
    assert targets[100] == targets[101] != targets[102]
    assert [m.vmid for m in plan.moves][:2] == [100, 101]  # 8 GiB together goes before 6 GiB
    assert plan.moves[0].reason.startswith("moves together with 100, 101: ")


def test_positive_affinity_follows_partners_on_other_nodes():
    rule = make_ha_rule("pair", "resource-affinity", ("vm:100", "vm:101"), affinity="positive")
    snap = _snapshot([make_guest(100, "pve1"), make_guest(101, "pve3")], ha_rules=(rule,))
    assert _targets(plan_evacuation(snap, "pve1")) == {100: "pve3"}


def test_strict_ha_node_affinity_is_honoured_even_for_a_user():
    rule = make_ha_rule("r1", "node-affinity", ("vm:100",), nodes=(("pve1", 2), ("pve2", 1)), strict=True)
    snap = _snapshot([make_guest(100, "pve1", hastate="started")], ha_rules=(rule,))
    # pve2 is allowed, but while pve1 is online PVE moves it back there: a user is warned, and
    # automation (the power policy's drain) does not make the move at all
    [move] = plan_evacuation(snap, "pve1").moves
    assert move.target == "pve2" and any("moves it back there" in w for w in move.warnings)
    assert not plan_evacuation(snap, "pve1", mode="auto").moves
    plan = plan_evacuation(snap, "pve1", RuleSet(maintenance={"pve2"}))
    assert plan.unplaceable[0].reason == (
        "pve2: node is in maintenance; pve3, pve4: strict HA node-affinity rule 'r1' allows only pve1, pve2 "
        "(PVE's HA manager enforces it for every move)"
    )


def test_proxlb_tags_when_imported():
    snap = _snapshot(
        [
            make_guest(100, "pve1", tags=("plb_pin_pve3",)),
            make_guest(101, "pve1", tags=("plb_anti_affinity_dns",)),
            make_guest(102, "pve4", tags=("plb_anti_affinity_dns",), mem=GIB // 2),
        ]
    )
    plan = plan_evacuation(snap, "pve1", RuleSet(import_proxlb_tags=True), mode="auto")
    targets = _targets(plan)
    assert targets[100] == "pve3"
    assert targets[101] != "pve4"


def test_evacuating_an_offline_node_moves_nothing():
    snap = _snapshot(
        [make_guest(100, "pve1", status="unknown")], nodes=[make_node("pve1", status="offline"), make_node("pve2")]
    )
    plan = plan_evacuation(snap, "pve1")
    assert plan.moves == ()
    assert plan.unplaceable[0].reason == "its node pve1 is offline"


def test_a_single_node_cluster_has_nowhere_to_go():
    snap = _snapshot([make_guest(100, "pve1")], nodes=[make_node("pve1")])
    assert plan_evacuation(snap, "pve1").unplaceable[0].reason == "no other node in the cluster"


def test_an_empty_node_gives_an_empty_complete_plan():
    plan = plan_evacuation(_snapshot([make_guest(100, "pve2")]), "pve1", now=1234.0)
    assert plan.moves == () and plan.complete and plan.planned_at == 1234.0


def test_projected_loads_after_the_plan():
    snap = _snapshot([make_guest(100, "pve1", mem=16 * GIB)], nodes=[make_node("pve1"), make_node("pve2")])
    plan = plan_evacuation(snap, "pve1")
    assert plan.before.loads["pve1"] == pytest.approx(0.125)
    assert plan.loads_after == {"pve1": 0.0, "pve2": pytest.approx(0.125)}
    assert plan.after.imbalance == pytest.approx(1.0)


def test_bad_arguments_are_usage_errors():
    snap = _snapshot([make_guest(100, "pve1")])
    with pytest.raises(UsageError, match="no node 'pve9'"):
        plan_evacuation(snap, "pve9")
    with pytest.raises(UsageError, match="memory ceiling"):
        plan_evacuation(snap, "pve1", mem_ceiling=1.5)
    with pytest.raises(UsageError, match="mode must be"):
        plan_evacuation(snap, "pve1", mode="yolo")


def test_proxlb_ignore_is_a_decision_for_a_user_and_a_wall_for_automation():
    snap = _snapshot([make_guest(100, "pve1", tags=("plb_ignore_dev",))])
    rules = RuleSet(import_proxlb_tags=True)
    [held] = plan_evacuation(snap, "pve1", rules).needs_decision
    assert held.reason == "ProxLB ignore tag: never moved automatically"
    [stuck] = plan_evacuation(snap, "pve1", rules, mode="auto").unplaceable
    assert stuck.reason == held.reason


def test_an_affinity_group_too_big_for_any_node_stays_together_and_says_so():
    rule = make_ha_rule("pair", "resource-affinity", ("vm:100", "vm:101"), affinity="positive")
    snap = _snapshot(
        [make_guest(100, "pve1", mem=30 * GIB), make_guest(101, "pve1", mem=30 * GIB)],
        nodes=[make_node("pve1"), make_node("pve2")],
        ha_rules=(rule,),
    )
    plan = plan_evacuation(snap, "pve1")
    assert plan.moves == ()
    assert [u.reason for u in plan.unplaceable] == [
        "moves together with 100, 101: pve2: needs 60.0 GiB, 57.6 GiB free below the 90% ceiling"
    ] * 2


def test_ha_partners_moving_together_are_asked_for_once():
    """PVE's HA manager moves a positive-affinity partner along with the guest asked for: of two
    moves from one node to one node, the second is not asked for; other moves are."""
    rule = make_ha_rule("pair", "resource-affinity", ("vm:106", "vm:107"), affinity="positive")
    guests = [make_guest(v, "pve1", hastate="started") for v in (106, 107)] + [make_guest(108, "pve1")]
    snap = make_snapshot([make_node(n) for n in ("pve1", "pve2", "pve3")], guests, ha_rules=(rule,))
    moves = [planned_move(snap.guest_by_vmid[v], "pve1", "pve2", "test", None) for v in (106, 107, 108)]
    asked, along = comigrating(snap, moves)
    assert [m.vmid for m in asked] == [106, 108] and [(m.vmid, leader) for m, leader in along] == [(107, 106)]
    apart = [moves[0], planned_move(snap.guest_by_vmid[107], "pve1", "pve3", "test", None)]
    assert [m.vmid for m in comigrating(snap, apart)[0]] == [106, 107]  # not to one node: both asked for
    assert comigrating(replace(snap, ha_rules=()), moves)[1] == []
