"""The migrate dialog's fit preview: every candidate node before/after, with its verdict."""

import pytest

from pvetop.errors import UsageError
from pvetop.policy.placement import preview_candidates, preview_move
from pvetop.policy.rules import RuleSet
from tests.factories import GIB, make_guest, make_node, make_snapshot


def _snapshot():
    return make_snapshot(
        [
            make_node("pve1", maxcpu=8),
            make_node("pve2", maxcpu=16, mem=8 * GIB),
            make_node("pve3", maxcpu=16, mem=60 * GIB),
            make_node("pve4", status="offline"),
        ],
        [make_guest(100, "pve1", cpu=0.5, maxcpu=4, mem=8 * GIB, maxmem=12 * GIB)],
        derive_usage=True,
    )


def test_preview_shows_source_and_target_before_and_after():
    snap = _snapshot()
    preview = preview_move(snap, snap.guest_by_vmid[100], "pve2")
    assert preview.source.node == "pve1" and preview.target.node == "pve2"
    assert preview.source.before.cpu_fraction == pytest.approx(2 / 8)
    assert preview.source.after.cpu_fraction == pytest.approx(0.0)
    assert preview.source.before.mem == 8 * GIB and preview.source.after.mem == 0
    assert preview.target.before.mem == 8 * GIB and preview.target.after.mem == 16 * GIB
    assert preview.target.after.cpu_fraction == pytest.approx(2 / 16)
    assert preview.target.after.committed == 12 * GIB
    assert preview.verdict.allowed


def test_preview_reports_imbalance_before_and_after():
    snap = _snapshot()
    preview = preview_move(snap, snap.guest_by_vmid[100], "pve2")
    assert preview.imbalance_after != preview.imbalance_before
    assert 0.0 <= preview.imbalance_after <= 1.0


def test_every_other_node_is_a_candidate_allowed_ones_first():
    snap = _snapshot()
    previews = preview_candidates(snap, snap.guest_by_vmid[100], RuleSet(pins={100: {"pve1"}}))
    assert [p.target.node for p in previews] == ["pve2", "pve3", "pve4"]
    assert [p.verdict.allowed for p in previews] == [True, False, False]
    assert previews[0].verdict.warnings == ("pinned to pve1",)
    assert previews[1].verdict.blocks == ("needs 8.0 GiB, 4.0 GiB free",)
    assert previews[2].verdict.blocks == ("offline",)


def test_auto_mode_preview_blocks_on_rules():
    snap = _snapshot()
    previews = preview_candidates(snap, snap.guest_by_vmid[100], RuleSet(pins={100: {"pve1"}}), mode="auto")
    assert not any(p.verdict.allowed for p in previews)


def test_a_stopped_guest_moves_no_load():
    snap = make_snapshot(
        [make_node("pve1"), make_node("pve2", mem=4 * GIB)], [make_guest(100, "pve1", status="stopped")]
    )
    target = preview_move(snap, snap.guest_by_vmid[100], "pve2").target
    assert (target.after.mem, target.after.cpu_cores, target.after.committed) == (4 * GIB, 0.0, 0)
    assert target.after.guests == target.before.guests + 1


def test_preview_to_an_unknown_node_is_a_usage_error():
    snap = _snapshot()
    with pytest.raises(UsageError, match="no node 'nope'"):
        preview_move(snap, snap.guest_by_vmid[100], "nope")
