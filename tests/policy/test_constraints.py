"""Manual vs automatic verdicts for every kind of rule (the rules table in docs/design.md)."""

from dataclasses import replace

import pytest

from pvetop.errors import UsageError
from pvetop.model import MigratePrecondition
from pvetop.policy.constraints import Constraints, Kind, Verdict, check_move
from pvetop.policy.projection import ProjectedCluster
from pvetop.policy.rules import RuleSet
from tests.factories import GIB, make_guest, make_ha_rule, make_node, make_snapshot


def _cluster(*guests, nodes=("pve1", "pve2", "pve3"), ha_rules=()):
    return make_snapshot(
        [make_node(name) for name in nodes], guests or [make_guest(100, "pve1")], ha_rules=ha_rules, derive_usage=True
    )


def _both(snap, vmid, target, rules=None, **options):
    guest = snap.guest_by_vmid[vmid]
    return (
        check_move(snap, guest, target, rules, mode="manual", **options),
        check_move(snap, guest, target, rules, mode="auto", **options),
    )


def test_a_free_node_is_allowed_in_both_modes():
    manual, auto = _both(_cluster(), 100, "pve2")
    assert manual == Verdict("pve2", True) and auto == Verdict("pve2", True)


@pytest.mark.parametrize(
    "rules, target, text",
    [
        (RuleSet(pins={100: {"pve1", "pve3"}}), "pve2", "pinned to pve1, pve3"),
        (RuleSet(locks={100}), "pve2", "locked against automatic moves"),
        (RuleSet(reserved={"pve2"}), "pve2", "node is reserved"),
        (RuleSet(reserved={"pve1"}), "pve2", "its node pve1 is reserved"),
        (RuleSet(maintenance={"pve2"}), "pve2", "node is in maintenance"),
    ],
)
def test_user_rules_warn_a_user_and_stop_automation(rules, target, text):
    manual, auto = _both(_cluster(), 100, target, rules)
    assert manual.allowed and text in manual.warnings and not manual.blocks
    assert not auto.allowed and text in auto.blocks


def test_a_pin_allows_its_own_nodes():
    manual, auto = _both(_cluster(), 100, "pve3", RuleSet(pins={100: {"pve1", "pve3"}}))
    assert manual == Verdict("pve3", True) and auto == Verdict("pve3", True)


@pytest.mark.parametrize("target, text", [("pve1", "already on this node"), ("nope", "no such node in the cluster")])
def test_same_or_unknown_node_blocks(target, text):
    for verdict in _both(_cluster(), 100, target):
        assert not verdict.allowed and text in verdict.blocks


def test_offline_target_blocks():
    snap = make_snapshot([make_node("pve1"), make_node("pve2", status="offline")], [make_guest(100, "pve1")])
    for verdict in _both(snap, 100, "pve2"):
        assert verdict.blocks == ("offline",)


def test_a_guest_on_an_offline_node_cannot_be_migrated():
    snap = make_snapshot(
        [make_node("pve1", status="offline"), make_node("pve2")], [make_guest(100, "pve1", status="unknown")]
    )
    manual, _auto = _both(snap, 100, "pve2")
    assert manual.blocks == ("its node pve1 is offline",)


def test_a_pve_lock_blocks_even_a_manual_move():
    manual, _auto = _both(_cluster(make_guest(100, "pve1", lock="backup")), 100, "pve2")
    assert manual.blocks == ("guest is locked by Proxmox VE (backup)",)


def test_not_enough_free_memory_blocks_with_figures():
    snap = make_snapshot(
        [make_node("pve1"), make_node("pve2", mem=60 * GIB + GIB // 5)], [make_guest(100, "pve1", mem=8 * GIB)]
    )
    manual, auto = _both(snap, 100, "pve2")
    assert manual.blocks == ("needs 8.0 GiB, 3.8 GiB free",)
    assert auto.blocks == manual.blocks


def test_memory_ceiling_is_named_in_the_reason():
    snap = _cluster(make_guest(100, "pve1", mem=8 * GIB), make_guest(101, "pve2", mem=52 * GIB))
    verdict = Constraints(snap, RuleSet()).verdict(
        snap.guest_by_vmid[100], "pve2", mode="auto", projection=ProjectedCluster.of(snap), mem_ceiling=0.9
    )
    assert verdict.blocks == ("needs 8.0 GiB, 5.6 GiB free below the 90% ceiling",)


def test_stopped_guests_need_no_free_memory():
    snap = make_snapshot(
        [make_node("pve1"), make_node("pve2", mem=64 * GIB)],
        [make_guest(100, "pve1", status="stopped", maxmem=32 * GIB)],
    )
    assert _both(snap, 100, "pve2")[1].allowed


def test_precondition_refusals_block_and_local_disks_warn():
    snap = _cluster()
    precondition = MigratePrecondition.from_api(
        {
            "running": 1,
            "allowed_nodes": ["pve2"],
            "not_allowed_nodes": {"pve3": {"unavailable_storages": ["local-zfs"]}},
            "local_disks": [{"volid": "local-lvm:vm-100-disk-0", "size": 1}],
            "local_resources": [],
        }
    )
    manual, auto = _both(snap, 100, "pve3", precondition=precondition)
    assert manual.blocks == ("Proxmox VE refuses: unavailable storages: local-zfs",)
    assert auto.blocks == manual.blocks
    to_pve2 = check_move(snap, snap.guest_by_vmid[100], "pve2", precondition=precondition)
    assert to_pve2.allowed and to_pve2.warnings == ("local disks are copied: local-lvm:vm-100-disk-0",)


def test_pve9_precondition_lists_allowed_nodes_with_nothing_against_them():
    """qemu-server Qemu.pm migrate_vm_precondition: every other node is in ``not_allowed_nodes``;
    an allowed one carries ``{}`` and is also in ``allowed_nodes``."""
    precondition = MigratePrecondition.from_api(
        {
            "running": 1,
            "allowed_nodes": ["pve2"],
            "not_allowed_nodes": {"pve2": {}, "pve3": {"unavailable_storages": ["local-zfs"]}},
            "local_disks": [],
            "local_resources": [],
        }
    )
    assert precondition.not_allowed_nodes == {"pve3": "unavailable storages: local-zfs"}
    assert _both(_cluster(), 100, "pve2", precondition=precondition)[0].allowed


def test_a_local_iso_in_the_cdrom_blocks_every_node():
    """qemu-server QemuMigrate.pm scan_local_volumes: a CD-ROM with an ISO on local storage makes
    the migration fail ("local cdrom image"); the precondition lists it with the disks, cdrom 1."""
    precondition = MigratePrecondition.from_api(
        {"running": 1, "local_disks": [{"volid": "local:iso/d.iso", "cdrom": 1}], "local_resources": []}
    )
    assert precondition.local_disks == ()
    manual, _ = _both(_cluster(), 100, "pve2", precondition=precondition)
    assert manual.blocks == ("uses local resources: local:iso/d.iso (local cdrom image)",)


def test_nodes_left_out_of_allowed_nodes_block():
    precondition = MigratePrecondition(allowed_nodes=frozenset({"pve2"}))
    manual, _ = _both(_cluster(), 100, "pve3", precondition=precondition)
    assert manual.blocks == ("not in Proxmox VE's allowed nodes",)


def test_local_resources_block_every_node():
    precondition = MigratePrecondition.from_api({"running": 1, "local_disks": [], "local_resources": ["hostpci0"]})
    for target in ("pve2", "pve3"):
        manual, _ = _both(_cluster(), 100, target, precondition=precondition)
        assert manual.blocks == ("uses local resources: hostpci0",)


def test_lxc_precondition_uses_dashes():
    precondition = MigratePrecondition.from_api(
        {"running": 0, "allowed-nodes": ["pve2"], "not-allowed-nodes": {"pve3": {"unavailable-storages": ["x"]}}}
    )
    assert precondition.allowed_nodes == frozenset({"pve2"})
    assert precondition.not_allowed_nodes == {"pve3": "unavailable storages: x"}


def test_edge_08_strict_ha_node_affinity_names_its_nodes_and_binds_every_move():
    """PVE's HA manager enforces a strict rule for a user's move too: refused in both modes."""
    rule = make_ha_rule("r1", "node-affinity", ("vm:100",), nodes=(("pve1", 2), ("pve3", 1)), strict=True)
    snap = _cluster(make_guest(100, "pve1", hastate="started"), ha_rules=(rule,))
    manual, auto = _both(snap, 100, "pve2")
    text = "strict HA node-affinity rule 'r1' allows only pve1, pve3 (PVE's HA manager enforces it for every move)"
    assert not manual.allowed and manual.blocks == (text,)
    assert auto.blocks == (text,)
    # pve3 is in the rule but below pve1's priority: the CRM moves the guest back to pve1
    manual, auto = _both(snap, 100, "pve3")
    assert manual.allowed and not auto.allowed
    assert auto.blocks == ("HA node-affinity rule 'r1' prefers pve1 (PVE's HA manager moves it back there)",)


def test_non_strict_ha_node_affinity_warns_a_user_and_binds_automation():
    """PVE's CRM (failback on) moves the guest straight back to the rule's node: a user is warned,
    an automatic move would be undone."""
    rule = make_ha_rule("r1", "node-affinity", ("vm:100",), nodes=(("pve1", 1),))
    snap = _cluster(make_guest(100, "pve1", hastate="started"), ha_rules=(rule,))
    manual, auto = _both(snap, 100, "pve2")
    text = "HA node-affinity rule 'r1' prefers pve1 (PVE's HA manager moves it back there)"
    assert manual.allowed and manual.warnings == (text,)
    assert not auto.allowed and auto.blocks == (text,)


def test_ha_node_affinity_prefers_the_top_priority_group_of_the_online_nodes():
    """A listed node below the top online priority is undone by the CRM too; with none of a
    non-strict rule's nodes online, any node will do."""
    rule = make_ha_rule("db", "node-affinity", ("vm:100",), nodes=(("pve1", 2), ("pve2", 2), ("pve3", 1)))
    snap = _cluster(
        make_guest(100, "pve2", hastate="started"), nodes=("pve1", "pve2", "pve3", "pve4"), ha_rules=(rule,)
    )
    assert _both(snap, 100, "pve1")[1].allowed
    assert _both(snap, 100, "pve3")[1].blocks == (
        "HA node-affinity rule 'db' prefers pve1, pve2 (PVE's HA manager moves it back there)",
    )
    assert not _both(snap, 100, "pve4")[1].allowed
    guest = make_guest(100, "pve4", hastate="started")
    nodes = [make_node(n) for n in ("pve1", "pve2", "pve3")] + [make_node("pve4")]
    down = make_snapshot(
        [replace(n, status="offline") if n.name in ("pve1", "pve2") else n for n in nodes],
        [guest],
        ha_rules=(rule,),
        derive_usage=True,
    )
    assert _both(down, 100, "pve3")[1].allowed
    alone = make_snapshot(
        [replace(n, status="offline") if n.name != "pve4" else n for n in nodes] + [make_node("pve5")],
        [guest],
        ha_rules=(rule,),
        derive_usage=True,
    )
    assert _both(alone, 100, "pve5")[1].allowed


def test_disabled_ha_rules_are_ignored():
    rule = make_ha_rule("r1", "node-affinity", ("vm:100",), nodes=(("pve1", 1),), strict=True, disabled=True)
    assert _both(_cluster(make_guest(100, "pve1"), ha_rules=(rule,)), 100, "pve2")[1].allowed


def test_ha_anti_affinity_keeps_guests_apart():
    rule = make_ha_rule("apart", "resource-affinity", ("vm:100", "ct:101"), affinity="negative")
    snap = _cluster(make_guest(100, "pve1"), make_guest(101, "pve2", type="lxc"), ha_rules=(rule,))
    manual, auto = _both(snap, 100, "pve2")
    assert not manual.allowed and manual.blocks == ("HA anti-affinity rule 'apart': ct:101 there",)
    assert not auto.allowed
    assert _both(snap, 100, "pve3")[1].allowed


def test_ha_positive_affinity_keeps_guests_together():
    rule = make_ha_rule("together", "resource-affinity", ("vm:100", "vm:101"), affinity="positive")
    snap = _cluster(make_guest(100, "pve1"), make_guest(101, "pve2"), ha_rules=(rule,))
    assert _both(snap, 100, "pve2")[1].allowed
    _, auto = _both(snap, 100, "pve3")
    assert auto.blocks == ("HA affinity rule 'together' keeps it with vm:101 on pve2",)


def test_positive_affinity_looks_past_companions_moving_along():
    rule = make_ha_rule("together", "resource-affinity", ("vm:100", "vm:101"), affinity="positive")
    snap = _cluster(make_guest(100, "pve1"), make_guest(101, "pve1"), ha_rules=(rule,))
    constraints = Constraints(snap, RuleSet())
    found = constraints.findings(
        snap.guest_by_vmid[100], "pve3", projection=ProjectedCluster.of(snap), companions=frozenset({100, 101})
    )
    assert found == []
    assert constraints.positive_partners(snap.guest_by_vmid[100]) == frozenset({101})


def test_anti_affinity_is_judged_on_the_projection():
    rule = make_ha_rule("apart", "resource-affinity", ("vm:100", "vm:101"), affinity="negative")
    snap = _cluster(make_guest(100, "pve1"), make_guest(101, "pve2"), ha_rules=(rule,))
    moved = ProjectedCluster.of(snap).apply([101], "pve3")
    constraints = Constraints(snap, RuleSet())
    guest = snap.guest_by_vmid[100]
    assert constraints.verdict(guest, "pve2", mode="auto", projection=moved).allowed
    assert not constraints.verdict(guest, "pve3", mode="auto", projection=moved).allowed


PROXLB = RuleSet(import_proxlb_tags=True)


def test_proxlb_pin_and_ignore_bind_automation_when_imported():
    snap = _cluster(make_guest(100, "pve1", tags=("plb_pin_pve3",)), make_guest(101, "pve1", tags=("plb_ignore_dev",)))
    manual, auto = _both(snap, 100, "pve2", PROXLB)
    assert manual.allowed and manual.warnings == ("ProxLB pin to pve3",)
    assert auto.blocks == ("ProxLB pin to pve3",)
    assert _both(snap, 100, "pve3", PROXLB)[1].allowed
    assert _both(snap, 101, "pve3", PROXLB)[1].blocks == ("ProxLB ignore tag: never moved automatically",)
    assert _both(snap, 101, "pve3")[1].allowed  # importing is off by default


def test_proxlb_groups():
    snap = _cluster(
        make_guest(100, "pve1", tags=("plb_anti_affinity_ntp", "plb_affinity_web")),
        make_guest(101, "pve2", tags=("plb_anti_affinity_ntp",)),
        make_guest(102, "pve3", tags=("plb_affinity_web",)),
    )
    _, to_pve2 = _both(snap, 100, "pve2", PROXLB)
    assert to_pve2.blocks == (
        "ProxLB anti-affinity 'ntp': 101 there",
        "ProxLB affinity 'web' keeps it with 102 on pve3",
    )
    assert _both(snap, 100, "pve3", PROXLB)[1].allowed


def test_findings_carry_their_kind():
    snap = _cluster()
    found = Constraints(snap, RuleSet(locks={100}, pins={100: {"pve1"}})).findings(
        snap.guest_by_vmid[100], "pve2", projection=ProjectedCluster.of(snap)
    )
    assert [f.kind for f in found] == [Kind.PIN, Kind.LOCK]


def test_an_unknown_mode_is_refused():
    snap = _cluster()
    with pytest.raises(UsageError, match="mode must be"):
        check_move(snap, snap.guest_by_vmid[100], "pve2", mode="sometimes")


# PVE's answer for running VM 100 on "a" with a disk on local storage: "b" takes it, copying the disk
LOCAL_DISK_ON_A = MigratePrecondition.from_api(
    {
        "running": 1,
        "allowed_nodes": ["b"],
        "not_allowed_nodes": {},
        "local_disks": [{"volid": "local-lvm:vm-100-disk-0"}],
        "local_resources": [],
    }
)


def test_ha_managed_vm_with_local_disks_is_blocked_in_every_mode():
    """PVE's HA manager never copies local disks, so planners must not propose the move."""
    snap = make_snapshot([make_node("a"), make_node("b")], [make_guest(100, "a", hastate="started")])
    guest = snap.guest_by_vmid[100]
    precondition = LOCAL_DISK_ON_A
    for mode in ("manual", "auto"):
        verdict = check_move(snap, guest, "b", mode=mode, precondition=precondition)
        assert not verdict.allowed
        assert any("HA manager does not copy local disks" in block for block in verdict.blocks)


def test_non_ha_vm_with_local_disks_only_warns_that_they_are_copied():
    snap = make_snapshot([make_node("a"), make_node("b")], [make_guest(100, "a")])
    precondition = LOCAL_DISK_ON_A
    verdict = check_move(snap, snap.guest_by_vmid[100], "b", precondition=precondition)
    assert verdict.allowed and any("local disks are copied" in w for w in verdict.warnings)
