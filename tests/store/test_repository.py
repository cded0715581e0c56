"""Create/read/update/delete of every kind of rule, each change journaled, bad input refused."""

import pytest

from pvetop.errors import UsageError
from pvetop.policy.rules import RuleSet
from pvetop.store import CURRENT_VERSION, DEFAULT_BOOT_TIMEOUT, NodePower, open_store

C = "homelab"


def actions(store, cluster=C):
    return [(e.action, e.target) for e in reversed(store.recent_journal(cluster))]


def test_pin_create_read_update_delete(store):
    pin = store.pin_guest(C, 100, "web", ["pve1"], note="near its storage", who="alice")
    assert store.pin(C, 100) == pin
    assert pin.nodes == {"pve1"} and pin.name == "web" and pin.note == "near its storage" and pin.who == "alice"
    repinned = store.pin_guest(C, 100, "web", ["pve2", "pve3"])
    assert store.pins(C) == [repinned]
    assert store.pin(C, 100).nodes == {"pve2", "pve3"}
    assert store.unpin(C, 100) == repinned
    assert store.pin(C, 100) is None and store.pins(C) == []
    assert store.unpin(C, 100) is None  # nothing to remove: no journal entry either
    assert actions(store) == [("pin", "guest/100"), ("pin", "guest/100"), ("unpin", "guest/100")]
    assert store.recent_journal(C)[1].params["before"] == ["pve1"]


def test_allowed_node_set_semantics(store):
    pin = store.pin_guest(C, 100, "web", ["pve2", "pve1", "pve2", " pve3 "])
    assert pin.nodes == frozenset({"pve1", "pve2", "pve3"})  # duplicates merged, blanks trimmed
    assert pin.allows("pve1") and not pin.allows("pve4")
    assert store.pin_guest(C, 101, "db", "pve4").nodes == {"pve4"}  # one node given as a string
    with pytest.raises(UsageError, match="at least one node"):
        store.pin_guest(C, 102, "x", [])
    with pytest.raises(UsageError, match="not a valid node name"):
        store.pin_guest(C, 102, "x", ["pve1", "bad name"])
    assert store.ruleset(C).pins == {100: frozenset({"pve1", "pve2", "pve3"}), 101: frozenset({"pve4"})}


def test_lock_create_read_update_delete(store):
    lock = store.lock_guest(C, 101, "db", reason="licence bound", who="bob")
    assert store.lock(C, 101) == lock and lock.reason == "licence bound"
    store.lock_guest(C, 101, "db", reason="still licence bound")
    assert [lk.reason for lk in store.locks(C)] == ["still licence bound"]
    assert store.unlock_guest(C, 101).vmid == 101
    assert store.locks(C) == [] and store.unlock_guest(C, 101) is None
    assert actions(store) == [("lock", "guest/101"), ("lock", "guest/101"), ("unlock", "guest/101")]


def test_reservation_create_read_update_delete(store):
    store.reserve_node(C, "pve3", reason="lab")
    store.reserve_node(C, "pve3", reason="lab, longer")
    assert [(r.node, r.reason) for r in store.reservations(C)] == [("pve3", "lab, longer")]
    assert store.reservation(C, "pve3").reason == "lab, longer"
    assert store.unreserve_node(C, "pve3").node == "pve3"
    assert store.reservations(C) == [] and store.unreserve_node(C, "pve3") is None
    assert actions(store) == [("reserve", "node/pve3")] * 2 + [("unreserve", "node/pve3")]


def test_maintenance_keeps_its_start_when_set_again(store):
    first = store.set_maintenance(C, "pve2", reason="disk")
    again = store.set_maintenance(C, "pve2", reason="disk and fan")
    assert again.since == first.since and again.reason == "disk and fan"
    assert store.maintenance(C) == [again]
    assert store.clear_maintenance(C, "pve2") == again
    assert store.maintenance(C) == [] and store.clear_maintenance(C, "pve2") is None
    assert [a for a, _ in actions(store)] == ["maintenance.set", "maintenance.set", "maintenance.clear"]


def test_node_power_settings_change_only_the_fields_given(store):
    assert store.node_power(C, "big") == NodePower(C, "big", None, False, DEFAULT_BOOT_TIMEOUT)
    store.set_node_power(C, "big", wol_mac="AA-BB-CC-DD-EE-01")
    store.set_node_power(C, "big", allow_power_off=True, boot_timeout=600)
    assert store.node_power(C, "big") == NodePower(C, "big", "aa:bb:cc:dd:ee:01", True, 600)
    store.set_node_power(C, "big", wol_mac="")
    assert store.node_power(C, "big").wol_mac is None
    assert store.node_power_settings(C) == [NodePower(C, "big", None, True, 600)]
    assert store.remove_node_power(C, "big").allow_power_off is True
    assert store.node_power_settings(C) == [] and store.remove_node_power(C, "big") is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"wol_mac": "aa:bb:cc"}, "not a MAC address"),
        ({"boot_timeout": 0}, "boot timeout"),
        ({"boot_timeout": "300"}, "boot timeout"),
        ({"allow_power_off": "yes"}, "true or false"),
    ],
)
def test_node_power_rejects_bad_values(store, kwargs, message):
    with pytest.raises(UsageError, match=message):
        store.set_node_power(C, "big", **kwargs)
    assert store.node_power_settings(C) == []


def test_settings_hold_json_values(store):
    store.set_setting(C, "balancer.mode", "auto")
    store.set_setting(C, "power.band", [0.45, 0.81])
    store.set_setting("other", "balancer.mode", "off")
    assert store.get_setting(C, "balancer.mode") == "auto"
    assert store.settings(C) == {"balancer.mode": "auto", "power.band": [0.45, 0.81]}
    assert store.get_setting(C, "missing", 7) == 7
    assert store.update_setting(C, "counter", lambda v: v + 1, default=41) == 42
    assert store.delete_setting(C, "power.band") and not store.delete_setting(C, "power.band")
    assert store.settings(C) == {"balancer.mode": "auto", "counter": 42}
    with pytest.raises(UsageError, match="JSON"):
        store.set_setting(C, "bad", object())
    assert store.get_setting(C, "bad") is None


def test_rules_are_kept_per_cluster(store):
    store.pin_guest("a", 100, "web", ["pve1"])
    store.pin_guest("b", 100, "mail", ["n1"])
    assert [p.name for p in store.pins("a")] == ["web"] and [p.name for p in store.pins("b")] == ["mail"]
    assert store.clusters() == ["a", "b"]


def test_ruleset_gathers_every_rule(store):
    store.pin_guest(C, 100, "web", ["pve1", "pve2"])
    store.lock_guest(C, 101, "db")
    store.reserve_node(C, "pve3")
    store.set_maintenance(C, "pve2")
    store.set_setting(C, "import_proxlb_tags", True)
    assert store.ruleset(C) == RuleSet(
        pins={100: frozenset({"pve1", "pve2"})},
        locks={101},
        reserved={"pve3"},
        maintenance={"pve2"},
        import_proxlb_tags=True,
    )
    assert store.ruleset("elsewhere") == RuleSet.empty()


@pytest.mark.parametrize("vmid", [99, 1_000_000_000, "abc", True, 100.5, None])
def test_bad_vmids_are_refused(store, vmid):
    with pytest.raises(UsageError, match="vmid"):
        store.pin_guest(C, vmid, "x", ["pve1"])
    assert store.pins(C) == [] and store.recent_journal(C) == []


def test_empty_cluster_name_is_refused(store):
    with pytest.raises(UsageError, match="cluster name"):
        store.lock_guest(" ", 100, "x")


def test_journal_keeps_actions_and_hides_secrets(store):
    entry = store.journal(
        C,
        "balancer",
        "migrate",
        "guest/100",
        {
            "target": "pve2",
            "password": "hunter2",
            "auth": {"token_value": "abc"},
            "header": "PVEAPIToken=root@pam!pvetop=secret",
            "nodes": {"b", "a"},
        },
        result="OK",
        upid="UPID:pve1:0000AAAA:0000BBBB:6560A000:qmigrate:100:root@pam:",
    )
    assert entry.actor == "balancer" and entry.upid.startswith("UPID:pve1")
    assert dict(entry.params) == {
        "target": "pve2",
        "password": "***",
        "auth": {"token_value": "***"},
        "header": "***",
        "nodes": ["a", "b"],
    }
    assert store.recent_journal(C) == [entry]
    assert "hunter2" not in repr(store.recent_journal(C)) and "secret" not in repr(store.recent_journal(C))
    with pytest.raises(UsageError, match="actor"):
        store.journal(C, "cron", "x", "y")


def test_recent_journal_is_newest_first_and_limited(store):
    for vmid in range(100, 110):
        store.lock_guest(C, vmid, f"g{vmid}")
    store.lock_guest("other", 200, "x")
    recent = store.recent_journal(C, limit=3)
    assert [e.target for e in recent] == ["guest/109", "guest/108", "guest/107"]
    assert recent[0].at > recent[1].at
    assert len(store.recent_journal(None, limit=100)) == 11


def test_rules_survive_reopening(new_db):
    path = new_db("reopened")
    with open_store(path) as first:
        first.pin_guest(C, 100, "web", ["pve1"])
        first.reserve_node(C, "pve3")
    with open_store(path) as second:
        assert second.found_version == CURRENT_VERSION
        assert [p.vmid for p in second.pins(C)] == [100] and [r.node for r in second.reservations(C)] == ["pve3"]
