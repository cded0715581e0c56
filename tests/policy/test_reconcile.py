"""Reconcile finds every rule that no longer matches the cluster and says what it would change."""

import pytest

from pvetop.policy.reconcile import reconcile
from pvetop.store.records import Lock, Maintenance, NodePower, Pin, Reservation, StoredRules
from tests.factories import make_guest, make_node, make_snapshot

C = "test"
SNAP = make_snapshot(
    [make_node("pve1"), make_node("pve2"), make_node("pve3", status="offline")],
    [
        make_guest(100, "pve1", name="web"),
        make_guest(101, "pve2", name="db"),
        make_guest(102, "pve3", name="", status="unknown"),
    ],  # on an offline node: no name
)


def rules(**kinds) -> StoredRules:
    return StoredRules(cluster=C, **{k: tuple(v) for k, v in kinds.items()})


def test_rules_that_match_the_cluster_need_no_change():
    stored = rules(
        pins=[Pin(C, 100, "web", frozenset({"pve1", "pve3"}))],
        locks=[Lock(C, 101, "db")],
        reservations=[Reservation(C, "pve3")],
        maintenance=[Maintenance(C, "pve2", 1.0)],
        node_power=[NodePower(C, "pve3", "aa:bb:cc:dd:ee:ff", True)],
    )
    assert reconcile(SNAP, stored) == ()


def test_a_guest_on_an_offline_node_without_a_name_is_not_called_reused():
    assert reconcile(SNAP, rules(pins=[Pin(C, 102, "files", frozenset({"pve3"}))], locks=[Lock(C, 102, "files")])) == ()


def test_a_vanished_guest_loses_its_pin_and_lock():
    pin, lock = Pin(C, 150, "old", frozenset({"pve1"})), Lock(C, 150, "old")
    changes = reconcile(SNAP, rules(pins=[pin], locks=[lock]))
    assert [(c.kind, c.target, c.problem, c.action, c.entry) for c in changes] == [
        ("pin", "guest/150", "guest_gone", "remove", pin),
        ("lock", "guest/150", "guest_gone", "remove", lock),
    ]
    assert "guest 150 (old) no longer exists" in changes[0].detail


def test_a_reused_vmid_is_detected_by_its_name():
    pin, lock = Pin(C, 100, "mail", frozenset({"pve1"})), Lock(C, 101, "olddb")
    changes = reconcile(SNAP, rules(pins=[pin], locks=[lock]))
    assert [(c.kind, c.problem, c.action) for c in changes] == [
        ("pin", "vmid_reused", "remove"),
        ("lock", "vmid_reused", "remove"),
    ]
    assert "vmid 100 now belongs to 'web', not 'mail'" in changes[0].detail


def test_a_pin_naming_a_missing_node_is_narrowed_to_the_nodes_left():
    pin = Pin(C, 100, "web", frozenset({"pve1", "pve9"}))
    (change,) = reconcile(SNAP, rules(pins=[pin]))
    assert (change.problem, change.action, change.new_nodes) == ("nodes_gone", "narrow", {"pve1"})
    assert "pve9" in change.detail and "keep only pve1" in change.detail


def test_a_pin_whose_every_node_is_gone_is_removed():
    (change,) = reconcile(SNAP, rules(pins=[Pin(C, 100, "web", frozenset({"old1", "old2"}))]))
    assert (change.problem, change.action) == ("nodes_gone", "remove")
    assert "old1, old2" in change.detail


def test_node_rules_of_a_missing_node_are_removed():
    stored = rules(
        reservations=[Reservation(C, "gone")],
        maintenance=[Maintenance(C, "gone", 1.0)],
        node_power=[NodePower(C, "gone", None, True)],
    )
    changes = reconcile(SNAP, stored)
    assert [(c.kind, c.target, c.problem, c.action) for c in changes] == [
        ("reservation", "node/gone", "node_gone", "remove"),
        ("maintenance", "node/gone", "node_gone", "remove"),
        ("node_power", "node/gone", "node_gone", "remove"),
    ]


def test_an_empty_snapshot_is_not_a_reason_to_drop_everything():
    with pytest.raises(ValueError, match="no nodes"):
        reconcile(make_snapshot([]), rules(pins=[Pin(C, 100, "web", frozenset({"pve1"}))]))
