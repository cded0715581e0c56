"""Pin suggestions from ProxLB plb_pin_ tags and PVE HA node-affinity rules."""

from pvetop.policy.suggestions import suggest_pins
from tests.factories import make_guest, make_ha_rule, make_node, make_snapshot

NODES = [make_node("pve1"), make_node("pve2"), make_node("pve3")]


def test_proxlb_pin_tags_suggest_a_pin_to_every_tagged_node():
    snap = make_snapshot(
        NODES,
        [
            make_guest(100, "pve1", name="web", tags=("plb_pin_pve1", "prod", "plb_pin_pve2")),
            make_guest(101, "pve2", tags=("prod",)),
        ],
    )
    (suggestion,) = suggest_pins(snap, {})
    assert (suggestion.vmid, suggestion.name, suggestion.nodes, suggestion.source) == (
        100,
        "web",
        {"pve1", "pve2"},
        "proxlb-tag",
    )
    assert "plb_pin_pve1, plb_pin_pve2" in suggestion.reason and suggestion.replaces is None
    assert suggestion.note == "from proxlb-tag"


def test_tags_naming_unknown_nodes_are_ignored():
    snap = make_snapshot(
        NODES, [make_guest(100, tags=("plb_pin_retired",)), make_guest(101, tags=("plb_pin_retired", "plb_pin_PVE3"))]
    )
    (suggestion,) = suggest_pins(snap, {})
    assert (suggestion.vmid, suggestion.nodes) == (101, {"pve3"})


def test_ha_node_affinity_rules_suggest_pins_for_their_guests():
    rules = (
        make_ha_rule(
            "db-on-big", "node-affinity", ("vm:100", "ct:101", "vm:999"), nodes=(("pve1", 2), ("pve2", 1)), strict=True
        ),
        make_ha_rule("prefer", "node-affinity", ("vm:102",), nodes=(("pve3", 1),)),
        make_ha_rule("off", "node-affinity", ("vm:103",), nodes=(("pve3", 1),), disabled=True),
        make_ha_rule("together", "resource-affinity", ("vm:100", "vm:102"), affinity="positive"),
    )
    snap = make_snapshot(
        NODES, [make_guest(100), make_guest(101, type="lxc"), make_guest(102), make_guest(103)], ha_rules=rules
    )
    found = suggest_pins(snap, {})
    assert [(s.vmid, s.nodes, s.source) for s in found] == [
        (100, {"pve1", "pve2"}, "ha-rule:db-on-big"),
        (101, {"pve1", "pve2"}, "ha-rule:db-on-big"),
        (102, {"pve3"}, "ha-rule:prefer"),
    ]  # vm:999 does not exist; disabled and resource rules suggest nothing
    assert "strict" in found[0].reason and "non-strict" in found[2].reason


def test_a_pin_already_matching_is_not_suggested_and_a_different_one_is_marked():
    snap = make_snapshot(NODES, [make_guest(100, tags=("plb_pin_pve1",)), make_guest(101, tags=("plb_pin_pve2",))])
    found = suggest_pins(snap, {100: frozenset({"pve1"}), 101: frozenset({"pve3"})})
    assert [(s.vmid, s.nodes, s.replaces) for s in found] == [(101, {"pve2"}, {"pve3"})]
