"""The store applies reviewed reconcile changes, journals each, and skips entries changed since the review."""

from pvetop.policy.reconcile import reconcile
from tests.factories import make_guest, make_node, make_snapshot

C = "test"
SNAP = make_snapshot(
    [make_node("pve1"), make_node("pve2")], [make_guest(100, "pve1", name="web"), make_guest(101, "pve2", name="newdb")]
)


def test_reviewed_changes_are_applied_and_journaled(store):
    store.pin_guest(C, 100, "web", ["pve1", "gone"])
    store.pin_guest(C, 150, "old", ["pve1"])
    store.lock_guest(C, 101, "db")  # vmid 101 now belongs to "newdb"
    store.reserve_node(C, "gone")
    store.set_maintenance(C, "gone")
    store.set_node_power(C, "gone", allow_power_off=True)
    store.set_node_power(C, "pve1", wol_mac="aa:bb:cc:dd:ee:ff")
    changes = reconcile(SNAP, store.rules(C))
    assert len(changes) == 6
    outcome = store.apply_reconcile(C, changes)
    assert all(applied for _, applied in outcome)
    assert [(p.vmid, p.nodes) for p in store.pins(C)] == [(100, {"pve1"})]
    assert store.locks(C) == [] and store.reservations(C) == [] and store.maintenance(C) == []
    assert [n.node for n in store.node_power_settings(C)] == ["pve1"]
    assert reconcile(SNAP, store.rules(C)) == ()
    entries = [(e.action, e.target) for e in store.recent_journal(C, limit=6)]
    assert sorted(entries) == sorted(
        [
            ("reconcile.narrow", "pin:guest/100"),
            ("reconcile.remove", "pin:guest/150"),
            ("reconcile.remove", "lock:guest/101"),
            ("reconcile.remove", "reservation:node/gone"),
            ("reconcile.remove", "maintenance:node/gone"),
            ("reconcile.remove", "node_power:node/gone"),
        ]
    )


def test_an_entry_changed_after_the_review_is_left_alone(store):
    store.pin_guest(C, 150, "old", ["pve1"])
    store.lock_guest(C, 151, "old")
    changes = reconcile(SNAP, store.rules(C))
    store.pin_guest(C, 150, "old", ["pve2"])  # someone re-pinned it while the user was reading
    outcome = store.apply_reconcile(C, changes)
    assert [(c.kind, applied) for c, applied in outcome] == [("pin", False), ("lock", True)]
    assert store.pin(C, 150).nodes == {"pve2"}
    assert [e.action for e in store.recent_journal(C, limit=1)] == ["reconcile.remove"]
